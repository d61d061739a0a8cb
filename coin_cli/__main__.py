from coin_cli.startup import main

main()

from coin_cli.app import main

main()

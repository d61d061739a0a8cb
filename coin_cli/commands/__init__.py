"""One module per command group: parse options, call one service, render. No logic here."""

"""Charts (matplotlib, drawn only here) and the self-contained HTML page of `coin report`."""

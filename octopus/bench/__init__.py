"""``octopus bench``: measure a server and its agents (dispatch latency, throughput, heartbeats,
schedule lag, memory, list calls) and return the figures; the command line prints them."""

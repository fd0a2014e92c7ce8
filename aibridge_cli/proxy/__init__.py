"""The proxy core: the HTTP server, routes, the interception engine, the upstream client,
the key pool, and assembling them into a running proxy (``aibridge serve``)."""

"""DHCPv4 above the wire codec: a sans-IO client state machine (RFC 2131 4.4, ``client``), the
lease it obtains (``lease``) and a small server for the simulated network (``server``), each
with its glue to a stack's UDP layer. Neither reads a clock or does I/O (see each module).
"""

"""Pure codecs: PPTP control messages, enhanced GRE, control-stream reassembly.

Nothing here imports Ryu, eventlet or sockets.
"""

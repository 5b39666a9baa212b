# Lessons 4 and 6: send a block of bytes to the peer's discard service (10.0.0.1, port 9),
# which reads and throws away everything it gets. Our stack cuts the data into segments of
# at most one MSS (1448 bytes here) and sends as many as its congestion window allows.
#
#   bulk_send.py [BYTES]     default 20000
import socket
import sys

SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 20000

s = socket.socket()
s.connect(("10.0.0.1", 9))
s.write(b"x" * SIZE)  # returns once all of it is in the send buffer
s.close()  # the stack sends the rest, then the FIN
print("sent", SIZE, "bytes")

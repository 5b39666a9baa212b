# Lesson 5: flow control. Connect to the peer's chargen service (10.0.0.1, port 19), which
# sends characters as fast as TCP lets it, and do not read for a while: our receive buffer
# fills, our advertised window shrinks to zero, and the peer must stop and probe.
import socket
import time

s = socket.socket()
s.connect(("10.0.0.1", 19))
time.sleep(5)  # not reading: the stack buffers what arrives until the buffer is full
data = s.read(20000)  # now read a little: the window opens again
print("read", len(data), "bytes")
time.sleep(1)  # the peer fills the space we made, then probes again
s.close()  # closing with unread data resets the connection (RFC 2525)

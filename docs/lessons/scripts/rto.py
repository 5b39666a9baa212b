# Lesson 3: loss and retransmission. Send one small message to the peer's echo service
# (10.0.0.1, port 7) and wait for the answer. Run it with an --impair rule that loses the
# message on its way out: pystack must send it again when its retransmission timer fires.
import socket

s = socket.socket()
s.connect(("10.0.0.1", 7))
s.write(b"hello")  # one segment of 5 bytes
print("echo:", s.read(5))  # blocks until the echo comes back
s.close()

# Lesson 2: the three-way handshake. Open a TCP connection to the peer's echo service
# (10.0.0.1, port 7), send five bytes, read them back and close.
import socket

s = socket.socket()
s.connect(("10.0.0.1", 7))  # SYN, SYN-ACK, ACK: returns once the connection is established
s.write(b"hello")
print("echo:", s.read(5))
s.close()

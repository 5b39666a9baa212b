# Lesson 7: closing a connection, and TIME-WAIT. Exchange one message with the peer's echo
# service (10.0.0.1, port 7), close first, then stay alive long enough to see TIME-WAIT end.
import socket
import time

s = socket.socket()
s.connect(("10.0.0.1", 7))
s.write(b"bye")
print("echo:", s.read(3))
s.close()  # we close first: our side goes through FIN-WAIT-1, FIN-WAIT-2 and TIME-WAIT
time.sleep(70)  # TIME-WAIT lasts 2*MSL = 60 s; on virtual time this takes no real time
print("done")

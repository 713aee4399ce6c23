#!/usr/bin/env python3
"""Traffic for scripts/demo.sh, run inside pod network namespaces.
  serve PORT NAME       answer each connection with "NAME", or sink a bulk upload
  get ADDR PORT         one connection: print the answer, or "refused"/"timed out"
  bulk ADDR PORT SECS   upload for SECS seconds, print MB/s
"""
import socket, sys, threading, time

def serve(port, name):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    def handle(c):
        with c:
            first = c.recv(65536)
            if first.startswith(b"BULK"):
                while c.recv(1 << 20):
                    pass
            else:
                c.sendall(name.encode())
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

def get(addr, port):
    try:
        c = socket.create_connection((addr, port), timeout=1.5)
        c.sendall(b"hi")
        print(c.recv(100).decode())
    except socket.timeout:
        print("timed out")
    except OSError as e:
        print("refused" if isinstance(e, ConnectionRefusedError) else str(e))

def bulk(addr, port, secs):
    c = socket.create_connection((addr, port), timeout=5)
    c.sendall(b"BULK")
    buf = b"\0" * (1 << 18)
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < secs:
        c.sendall(buf)
        sent += len(buf)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    print(f"{sent / (time.monotonic() - start) / 1e6:.0f} MB/s")

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif cmd == "get":
        get(sys.argv[2], int(sys.argv[3]))
    elif cmd == "bulk":
        bulk(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))

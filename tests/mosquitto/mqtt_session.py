#!/usr/bin/env python3
"""One MQTT 3.1.1 connection driven line by line, for tests that act on a
client that stays connected (a raw socket client: no MQTT library needed).

usage: mqtt_session.py PORT CLIENTID [USERNAME [PASSWORD]]
Prints "connack N" (the CONNACK return code; exits after a refusal), then
reads commands on stdin, one a line, and answers each on stdout:
  sub TOPIC        -> "suback N" (the granted QoS, 128 = refused)
  quit             -> disconnects and exits
"""
import socket
import struct
import sys


def enc_str(s):
    b = s.encode()
    return struct.pack('!H', len(b)) + b


def enc_len(n):
    out = b''
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            return out


def packet(kind, body):
    return bytes([kind]) + enc_len(len(body)) + body


def read_packet(s):
    head = s.recv(1)
    if not head:
        raise EOFError('connection closed by the broker')
    n, mul = 0, 1
    while True:
        b = s.recv(1)[0]
        n += (b & 127) * mul
        mul *= 128
        if not b & 128:
            break
    body = b''
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise EOFError('connection closed by the broker')
        body += chunk
    return head[0], body


def main():
    port, cid = int(sys.argv[1]), sys.argv[2]
    user = sys.argv[3] if len(sys.argv) > 3 else None
    pw = sys.argv[4] if len(sys.argv) > 4 else None
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if pw is not None else 0)
    body = enc_str('MQTT') + bytes([4, flags]) + struct.pack('!H', 60) + enc_str(cid)
    if user is not None:
        body += enc_str(user)
    if pw is not None:
        body += enc_str(pw)
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(packet(0x10, body))
    kind, body = read_packet(s)
    print(f'connack {body[1]}', flush=True)
    if body[1] != 0:
        return
    pid = 1
    for line in sys.stdin:
        cmd = line.split(None, 1)
        if not cmd:
            continue
        if cmd[0] == 'sub':
            s.sendall(packet(0x82, struct.pack('!H', pid) + enc_str(cmd[1].strip()) + b'\x00'))
            while True:
                kind, body = read_packet(s)
                if kind >> 4 == 9:
                    print(f'suback {body[2]}', flush=True)
                    break
            pid += 1
        elif cmd[0] == 'quit':
            s.sendall(b'\xe0\x00')
            break


if __name__ == '__main__':
    try:
        main()
    except (OSError, EOFError) as e:
        print(f'error {e}', flush=True)
        sys.exit(1)

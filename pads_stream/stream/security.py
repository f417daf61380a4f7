"""CurveZMQ for the node's sockets: encryption, and authentication of clients by key files.

Keys are pyzmq's certificate files (``zmq.auth.create_certificates(folder, name)`` writes
``name.key`` (public) and ``name.key_secret``). The node holds a server key pair; each client
(rig, detector, consumer) holds its own pair and the node's public key. With a folder of
authorised client public keys, the node admits only those clients (pyzmq's ZAP authenticator,
one thread it owns and stops); without it, any client that knows the node's public key may
connect, and traffic is still encrypted.
"""

from __future__ import annotations

from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class AdmittedKeys:
    """The client public keys one group of server sockets admits: those in a folder of key files,
    or, without a folder, any client that knows the server's key."""

    def __init__(self, folder: str = ""):
        self.keys = set(zmq.auth.load_certificates(folder)) if folder else None  # z85 public keys

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client with z85 public ``key`` may connect (pyzmq's credentials-provider hook)."""
        return self.keys is None or key in self.keys


def serve_curve(context: zmq.Context, sockets: list[zmq.Socket], secret_file: str, clients: str = "",
                domain: str = "*", auth: ThreadAuthenticator | None = None) -> ThreadAuthenticator | None:  # fmt: skip
    """Make ``sockets`` CURVE servers with the key pair in ``secret_file``; with a ``clients``
    folder of public keys, start the authenticator that admits only them (returned: stop it).
    Sockets of several groups, each with its own folder (a cluster's consumers and its workers),
    take a ``domain`` each and share one authenticator: pass the first call's ``auth`` to the next
    (there a group without a folder admits any client that knows the server's key)."""
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise ValueError(f"{secret_file} holds no secret key (use the .key_secret file)")
    if clients and not Path(clients).is_dir():
        raise ValueError(f"curve clients {clients} is not a folder of public key files")
    if (clients or domain != "*") and auth is None:  # a named domain is checked by the authenticator
        auth = ThreadAuthenticator(context)
        auth.start()
    if auth is not None:  # per domain (the authenticator's own "allow any" would hold for every domain)
        auth.configure_curve_callback(domain=domain, credentials_provider=AdmittedKeys(clients))
    for sock in sockets:
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = secret, public, True
        if domain != "*":
            sock.zap_domain = domain.encode()
    return auth


def curve_client(sock: zmq.Socket, server_public_file: str, client_secret_file: str) -> None:
    """Configure ``sock`` (before connect) as a CURVE client of the node whose public key is in
    ``server_public_file``, with this client's key pair from ``client_secret_file``."""
    server_public, _ = zmq.auth.load_certificate(server_public_file)
    public, secret = zmq.auth.load_certificate(client_secret_file)
    if secret is None:
        raise ValueError(f"{client_secret_file} holds no secret key (use the .key_secret file)")
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_public, public, secret

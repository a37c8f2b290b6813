"""Which hosts the deliverer may call: the operator's allow-list (`rtm deliver --allow-host`).

A campaign names its webhook's endpoint, and campaigns come from files and a Kafka topic
that more people can write than the machine's operator: without a limit, a campaign could
make the deliverer POST to the cloud's metadata service, to an admin port on loopback or
to anything on the private network (server-side request forgery). So:

- the endpoint's host must be on the list: a name (`hooks.example.com`), every name under
  a domain (`*.example.com`), or an address or network (`10.1.2.3`, `10.0.0.0/8`);
- every address the host resolves to must be public, unless it is in a listed address or
  network: loopback, private, link-local (169.254.169.254, the metadata service) and
  reserved ones are refused. The check runs on the addresses the connection then uses
  (`GuardedAdapter`), so a name that resolves to something else on a second lookup
  (DNS rebinding) gains nothing.
"""

import ipaddress
import socket
from dataclasses import dataclass

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError

from rtm.errors import RtmError

ENV_VAR = "RTM_ALLOW_HOSTS"
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedHost(Exception):
    """The endpoint's host or one of its addresses is not allowed; the message says which and what to do.
    Not an OSError, so the HTTP stack passes it through instead of retrying it as a network error."""


@dataclass(frozen=True)
class HostPolicy:
    names: frozenset[str] = frozenset()  # lower case; "*.example.com" allows every name under example.com
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, entries: list[str] | tuple[str, ...]) -> "HostPolicy":
        names, networks = set(), []
        for entry in entries:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.removeprefix("*.")
            if not name or not all(part and part.replace("-", "").isalnum() for part in name.split(".")):
                raise RtmError(f"--allow-host {entry!r} is neither a host name (hooks.example.com), a domain "
                               "(*.example.com) nor an address or network (10.0.0.0/8)")
            names.add(entry)
        return cls(frozenset(names), tuple(networks))

    def _listed_address(self, address: IPAddress) -> bool:
        return any(address.version == network.version and address in network for network in self.networks)

    def check_host(self, host: str) -> None:
        """Raise RefusedHost unless the endpoint's host (a name or an address literal) is listed."""
        host = host.lower().rstrip(".")
        try:
            address = _address(host)
        except ValueError:
            address = None
        if address is not None:
            listed = self._listed_address(address)
        else:
            listed = host in self.names or any(
                pattern.startswith("*.") and host.endswith(pattern[1:]) for pattern in self.names)
        if not listed:
            given = ", ".join(sorted([*self.names, *map(str, self.networks)])) or "none"
            raise RefusedHost(f"host {host!r} is not allowed: the deliverer calls only the hosts of --allow-host "
                              f"(${ENV_VAR}; given: {given}); add it there if campaigns may call it")

    def check_address(self, host: str, address: IPAddress) -> None:
        """Raise RefusedHost if `host` resolved to an address that is not public and not listed."""
        if address.is_global or self._listed_address(address):
            return
        kind = ("loopback" if address.is_loopback else "link-local" if address.is_link_local
                else "private" if address.is_private else "reserved")
        raise RefusedHost(f"host {host!r} resolves to {address}, a {kind} address: refused, it could reach the "
                          f"deliverer's own machine or network; allow it with --allow-host {address} if meant")


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.strip("[]"))
    # ::ffff:127.0.0.1 is 127.0.0.1
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


class _Checked:
    """A urllib3 connection that resolves its host itself, checks every address, and
    connects to the checked one (the TLS handshake still names the host)."""

    policy: HostPolicy

    def _new_conn(self):
        try:
            found = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise NameResolutionError(self.host, self, err) from err
        addresses = [_address(info[4][0]) for info in found]
        for address in addresses:
            self.policy.check_address(self.host, address)
        dns_host, self._dns_host = self._dns_host, str(addresses[0])
        try:
            return super()._new_conn()
        finally:
            self._dns_host = dns_host


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only to hosts and addresses `policy` allows
    (the host name is checked by the caller, `HostPolicy.check_host`)."""

    def __init__(self, policy: HostPolicy):
        http = type("CheckedHTTPConnection", (_Checked, HTTPConnection), {"policy": policy})
        https = type("CheckedHTTPSConnection", (_Checked, HTTPSConnection), {"policy": policy})
        self._pools = {
            "http": type("CheckedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("CheckedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

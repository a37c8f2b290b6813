"""Which hosts and addresses a deliverer may call (rtm.allowed_hosts)."""

import ipaddress

import pytest

from rtm.allowed_hosts import HostPolicy, RefusedHost
from rtm.errors import RtmError

POLICY = HostPolicy.parse(["hooks.example.com", "*.partner.example", "10.1.2.3", "192.168.0.0/16"])


@pytest.mark.parametrize("host", ["hooks.example.com", "HOOKS.example.com.", "a.partner.example",
                                  "b.c.partner.example", "10.1.2.3", "192.168.7.9"])
def test_listed_names_domains_addresses_and_networks_are_allowed(host):
    POLICY.check_host(host)


@pytest.mark.parametrize("host", ["example.com", "evil-hooks.example.com", "partner.example", "xpartner.example",
                                  "10.1.2.4", "169.254.169.254", "[::1]", "localhost"])
def test_any_other_host_is_refused_with_the_list_and_what_to_do(host):
    with pytest.raises(RefusedHost, match="is not allowed: .* add it there"):
        POLICY.check_host(host)


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.0.0.1", "private"), ("172.16.0.1", "private"), ("fd00::1", "private"),
    ("0.0.0.0", "private"), ("100.64.0.1", "reserved"),
])
def test_a_name_that_resolves_to_a_non_public_address_is_refused_unless_the_address_is_listed(address, kind):
    with pytest.raises(RefusedHost, match=f"resolves to {address}, a {kind} address: .* --allow-host {address}"):
        POLICY.check_address("hooks.example.com", ipaddress.ip_address(address))
    HostPolicy.parse([address]).check_address("hooks.example.com", ipaddress.ip_address(address))


def test_public_addresses_pass_and_ipv4_mapped_ipv6_is_its_ipv4_address():
    POLICY.check_address("hooks.example.com", ipaddress.ip_address("93.184.216.34"))
    POLICY.check_host("::ffff:10.1.2.3")  # listed as 10.1.2.3
    with pytest.raises(RefusedHost):
        HostPolicy().check_host("::ffff:127.0.0.1")


def test_nothing_is_allowed_by_default():
    with pytest.raises(RefusedHost, match="given: none"):
        HostPolicy().check_host("hooks.example.com")


@pytest.mark.parametrize("entry", ["http://hooks.example.com", "hooks.example.com:443", "a..b", "*."])
def test_an_entry_that_is_no_host_fails_with_what_it_may_be(entry):
    with pytest.raises(RtmError, match="is neither a host name"):
        HostPolicy.parse([entry])

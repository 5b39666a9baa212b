"""DHCP client and server tests."""

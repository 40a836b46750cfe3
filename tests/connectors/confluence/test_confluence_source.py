"""Registering a Confluence source: configuration checks and the default identity mapping."""
import json

import pytest
from django.core.management import CommandError, call_command

from access.models import IdentityMapping
from connectors.base import ConnectorConfigError
from connectors.confluence import ConfluenceConnector

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("flavour, user_key", [("cloud", "email"), ("datacenter", "username")])
def test_add_source_gives_a_confluence_source_its_default_identity_mapping(flavour, user_key):
    config = {"base_url": "https://wiki.example.com", "flavour": flavour}
    call_command("add_source", "wiki", "--connector", "confluence", "--config", json.dumps(config))
    mapping = IdentityMapping.objects.get(source_key="wiki")
    assert (mapping.user_key, mapping.group_key) == (user_key, "cn")


def test_an_explicit_mapping_or_opting_out_wins_over_the_default():
    config = json.dumps({"base_url": "https://wiki.example.com"})
    call_command("add_source", "wiki", "--connector", "confluence", "--config", config,
                 "--identity-user-key", "upn", "--identity-group-key", "dn")
    assert IdentityMapping.objects.get(source_key="wiki").user_key == "upn"
    call_command("add_source", "raw", "--connector", "confluence", "--config", config, "--no-identity-mapping")
    assert not IdentityMapping.objects.filter(source_key="raw").exists()


@pytest.mark.parametrize("config, message", [
    ({}, "base_url"),
    ({"base_url": "wiki.example.com"}, "base_url"),
    ({"base_url": "https://w", "flavour": "server"}, "flavour"),
    ({"base_url": "https://w", "spaces": "ENG"}, "spaces"),
    ({"base_url": "https://w", "page_size": 0}, "page_size"),
    ({"base_url": "https://w", "timezone": "Mars/Olympus"}, "timezone"),
    ({"base_url": "https://w", "include_attachments": "yes"}, "include_attachments"),
])
def test_bad_configuration_is_refused_clearly(config, message):
    with pytest.raises(ConnectorConfigError, match=message):
        ConfluenceConnector(config=config)
    with pytest.raises(CommandError, match=message):
        call_command("add_source", "wiki", "--connector", "confluence", "--config", json.dumps(config))

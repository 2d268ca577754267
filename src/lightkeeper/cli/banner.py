"""The one-time welcome: endpoint, first credentials, and copy-paste snippets."""

from __future__ import annotations

import shlex

import click

from lightkeeper.config import Settings
from lightkeeper.store.accounts import Account, ApiKey
from lightkeeper.store.database import shown_url


def print_banner(endpoint: str, account: Account, key: ApiKey) -> None:
    """Shown once, when the first account is created; plain text so it can be copied as is."""
    text = f"""Lightkeeper is listening on http://{endpoint}
Account {account.name} (Uin {account.uin}, AppId {account.app_id}) was created:

  SecretId  {key.secret_id}
  SecretKey {key.secret_key}

Python SDK:
  from tencentcloud.common import credential
  from tencentcloud.common.profile.client_profile import ClientProfile
  from tencentcloud.common.profile.http_profile import HttpProfile
  from tencentcloud.lighthouse.v20200324 import lighthouse_client, models
  cred = credential.Credential("{key.secret_id}", "{key.secret_key}")
  profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint="{endpoint}"))
  client = lighthouse_client.LighthouseClient(cred, "ap-guangzhou", profile)
  print(client.DescribeRegions(models.DescribeRegionsRequest()).to_json_string())

tccli:
  tccli lighthouse DescribeRegions --region ap-guangzhou --endpoint http://{endpoint} \\
    --secretId {key.secret_id} --secretKey {key.secret_key}
"""
    click.echo(text)


def print_key_hint(settings: Settings) -> None:
    """On a start that created no account: the banner's keys were shown once, long ago, so
    say in one line how to get them back (the command, never a secret)."""
    command = ["lightkeeper", "admin", "key", "list", "--show-secret"]
    command += ["--data-dir", str(settings.data_dir)]
    if settings.database_url:  # its password, if any, is shown as ***
        command += ["--database", shown_url(settings.database_url)]
    click.echo(f"Accounts exist already; their API keys: {shlex.join(command)}")

"""datalake.aws: one client per service, every client's SDK models loaded once per process, and each client still
reading its endpoint and credentials from the environment when it is made."""

from __future__ import annotations

from datalake import aws


def test_clients_of_different_services_share_one_model_loader_and_keep_it_across_a_reset():
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    assert aws.client("s3") is s3  # cached per service
    assert s3._loader is ddb._loader  # botocore keeps the session's loader on the client

    aws.reset_clients()

    again = aws.client("s3")
    assert again is not s3
    assert again._loader is s3._loader


def test_a_client_made_after_a_reset_reads_the_endpoint_and_credentials_set_since(monkeypatch):
    before = aws.client("sqs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDNEWONE")
    aws.reset_clients()

    after = aws.client("sqs")

    assert after.meta.endpoint_url == "http://127.0.0.1:5999"
    assert after._request_signer._credentials.access_key == "AKIDNEWONE"
    assert before._request_signer._credentials.access_key != "AKIDNEWONE"


def test_a_data_path_of_its_own_gets_a_loader_of_its_own(monkeypatch, tmp_path):
    shared = aws.session()._session.get_component("data_loader")
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))

    own = aws.session()._session.get_component("data_loader")

    assert own is not shared
    assert str(tmp_path) in own.search_paths

"""Get MLflow's backends ready before `mlflow server` starts (the MLflow pod's init container).

1. Wait for PostgreSQL, then create the basic-auth user database if it is missing
   (the postgres image only creates POSTGRES_DB, the tracking database, on first start).
2. Wait for the S3 endpoint, then create the artifact bucket if it is missing
   (pyarrow, which Ray Tune uses for s3:// storage, does not create buckets).

Idempotent: safe on every pod start. Configuration comes from the environment only:
  PGHOST, PGPORT, PGUSER, PGPASSWORD   libpq's own variables (no credentials in URIs)
  MLFLOW_AUTH_DATABASE                 name of the auth database (default mlflow_auth)
  MLFLOW_S3_ENDPOINT_URL               e.g. http://minio:9000 (unset: AWS S3 itself)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
  ARTIFACT_BUCKET                      e.g. scalestudy
  PREPARE_TIMEOUT_S                    how long to wait for each backend (default 300)
"""

import os
import sys
import time

import boto3
import botocore.exceptions
import psycopg2
from psycopg2 import sql


def _retry(what, attempt, timeout_s):
    """Call `attempt()` until it returns without raising or `timeout_s` seconds have passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return attempt()
        except Exception as err:  # noqa: BLE001 -- any error: the backend may not be up yet
            if time.monotonic() > deadline:
                sys.exit(f"prepare_backends: gave up waiting for {what}: {err}")
            print(f"prepare_backends: waiting for {what}: {err}", flush=True)
            time.sleep(3)


def ensure_database(name, timeout_s):
    def attempt():
        # Connect to the maintenance database `postgres`; host/user/password from PG* env.
        conn = psycopg2.connect(dbname="postgres", connect_timeout=5)
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    print(f"prepare_backends: created database {name}", flush=True)
        finally:
            conn.close()

    _retry("PostgreSQL", attempt, timeout_s)


def ensure_bucket(bucket, timeout_s):
    s3 = boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None)

    def attempt():
        try:
            s3.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            s3.create_bucket(Bucket=bucket)
            print(f"prepare_backends: created bucket {bucket}", flush=True)

    _retry("the S3 endpoint", attempt, timeout_s)


def main():
    timeout_s = float(os.environ.get("PREPARE_TIMEOUT_S", "300"))
    ensure_database(os.environ.get("MLFLOW_AUTH_DATABASE", "mlflow_auth"), timeout_s)
    bucket = os.environ.get("ARTIFACT_BUCKET")
    if bucket:
        ensure_bucket(bucket, timeout_s)
    print("prepare_backends: ready", flush=True)


if __name__ == "__main__":
    main()

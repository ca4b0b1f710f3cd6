#!/bin/sh
# Write credentials.env and ray-auth-token.env next to this script with fresh random values.
# Both files are gitignored; the script never overwrites an existing one.
set -eu
cd "$(dirname "$0")"

rand() {
    # 48 hex characters: URL-safe, so it can go into any URI unescaped.
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 24
    else
        python3 -c 'import secrets; print(secrets.token_hex(24))'
    fi
}

umask 077
if [ -e credentials.env ]; then
    echo "credentials.env exists; leaving it alone"
else
    cat > credentials.env <<EOT
POSTGRES_USER=mlflow
POSTGRES_PASSWORD=$(rand)
S3_ACCESS_KEY_ID=scalestudy
S3_SECRET_ACCESS_KEY=$(rand)
MLFLOW_ADMIN_USERNAME=admin
MLFLOW_ADMIN_PASSWORD=$(rand)
MLFLOW_FLASK_SERVER_SECRET_KEY=$(rand)
EOT
    echo "wrote $(pwd)/credentials.env"
fi
if [ -e ray-auth-token.env ]; then
    echo "ray-auth-token.env exists; leaving it alone"
else
    echo "auth_token=$(rand)" > ray-auth-token.env
    echo "wrote $(pwd)/ray-auth-token.env"
fi

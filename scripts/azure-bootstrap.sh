#!/usr/bin/env bash
# One-time Azure and GitHub set-up for .github/workflows/deploy.yml, idempotent: every step first asks
# whether its result exists and creates only what is missing, so a second run changes nothing.
#
#   bash scripts/azure-bootstrap.sh --repo OWNER/NAME --resource-group RG --location REGION \
#     --alert-email ADDRESS [--env-name prod] [--identity-name NAME] [--dry-run]
#
# 1. registers the resource providers infra/main.bicep needs (a resource-group Contributor cannot);
# 2. creates the resource group;
# 3. creates the deployment identity (a user-assigned managed identity in that group) with a federated
#    credential for the repository's `production` environment: no secret is ever stored;
# 4. grants it, on that resource group only, the roles the workflow needs (see grant_roles);
# 5. creates the retraining identity (environment `retrain`) for retrain.yml: it reads the training data
#    and reads/deletes ledger rows in this group's storage, nothing else;
# 6. creates the `production` and `retrain` environments and sets the repository variables the workflows read.
# Needs az (az login, as Owner of the subscription or Contributor + User Access Administrator) and gh
# (gh auth login, admin of the repository). --dry-run runs nothing and prints every command a fresh
# subscription would need, with placeholders for the values only Azure can tell.
set -euo pipefail

# What the deployed resources are made of: Web (Flex plan and app), App (Flex Consumption's
# infrastructure), Storage, ManagedIdentity, Insights (App Insights, alerts, workbook) and the workspace.
PROVIDERS=(
  Microsoft.Web
  Microsoft.App
  Microsoft.Storage
  Microsoft.ManagedIdentity
  Microsoft.Insights
  Microsoft.OperationalInsights
  Microsoft.KeyVault
)
CONTRIBUTOR=b24988ac-6180-42a0-ab88-20f7382dd24c
RBAC_ADMINISTRATOR=f58310d9-a9f6-439a-9e8d-f62e7b41a168
# The only roles infra/ assigns to the app's identity (identity.bicep, keyvault.bicep).
STORAGE_BLOB_DATA_OWNER=b7e6dc6d-f1e8-4753-8033-0f276bb0955b
MONITORING_METRICS_PUBLISHER=3913510d-42f4-4e42-8a64-420c390055eb
STORAGE_TABLE_DATA_CONTRIBUTOR=0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3
KEY_VAULT_SECRETS_USER=4633458b-17de-408a-b874-0445c86b69e6
# The retraining identity's: read the training-data blobs, read (pull) and delete (retention) ledger rows.
STORAGE_BLOB_DATA_READER=2a2b9908-6ea1-4ae2-8e65-a410df84e7d1
OIDC_ISSUER=https://token.actions.githubusercontent.com
OIDC_AUDIENCE=api://AzureADTokenExchange
CREDENTIAL_NAME=github-production
RETRAIN_CREDENTIAL_NAME=github-retrain

usage() {
  sed -n '5,6p' "$0" | sed 's/^# *//' >&2
  exit 2
}

die() {
  echo "error: $*" >&2
  exit 1
}

repo="" group="" location="" alert_email="" env_name="prod" identity="" dry_run=false
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo="${2:-}" ;;
    --resource-group) group="${2:-}" ;;
    --location) location="${2:-}" ;;
    --alert-email) alert_email="${2:-}" ;;
    --env-name) env_name="${2:-}" ;;
    --identity-name) identity="${2:-}" ;;
    --dry-run) dry_run=true; shift; continue ;;
    -h | --help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
  shift 2 || usage
done
if [ -z "$repo" ] || [ -z "$group" ] || [ -z "$location" ] || [ -z "$alert_email" ]; then
  usage
fi
[[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "--repo must be OWNER/NAME, not $repo"
# environmentName of infra/main.bicep: part of every resource name, 1 to 12 characters.
[[ "$env_name" =~ ^[a-z0-9]{1,12}$ ]] || die "--env-name must be 1-12 lowercase letters or digits"
identity="${identity:-id-github-deploy-$env_name}"
retrain_identity="id-github-retrain-$env_name"

# A command that changes something: print it (quoted, ready to paste), then run it unless --dry-run.
change() {
  echo "+ $(printf '%q ' "$@")"
  if ! $dry_run; then
    "$@"
  fi
}

# A read-only question; prints the answer, empty when the thing does not exist. With --dry-run nothing
# runs: the command is printed and the answer is the one a fresh subscription would give ($1).
ask() {
  local fresh="$1"
  shift
  if $dry_run; then
    echo "? $(printf '%q ' "$@")" >&2
    printf '%s\n' "$fresh"
    return
  fi
  "$@" 2>/dev/null || true
}

subscription="$(ask '<subscription-id>' az account show --query id --output tsv)"
tenant="$(ask '<tenant-id>' az account show --query tenantId --output tsv)"
if [ -z "$subscription" ] || [ -z "$tenant" ]; then
  die "az is not signed in: run az login (and az account set)"
fi
group_id="/subscriptions/$subscription/resourceGroups/$group"

register_providers() {
  local namespace state
  for namespace in "${PROVIDERS[@]}"; do
    state="$(ask NotRegistered az provider show --namespace "$namespace" --query registrationState --output tsv)"
    if [ "$state" != Registered ]; then
      change az provider register --namespace "$namespace" --wait
    fi
  done
}

create_group() {
  if [ "$(ask false az group exists --name "$group")" != true ]; then
    change az group create --name "$group" --location "$location" --tags project=air-paradis-sentiment \
      --output none
  fi
}

identity_field() {
  ask "$1" az identity show --name "$2" --resource-group "$group" --query "$3" --output tsv
}

# ensure_identity NAME CREDENTIAL ENVIRONMENT: the identity with a federated credential for that GitHub
# environment; sets client_id and principal_id.
ensure_identity() {
  local name="$1" credential="$2" environment="$3"
  if [ -z "$(identity_field '' "$name" clientId)" ]; then
    change az identity create --name "$name" --resource-group "$group" --location "$location" --output none
  fi
  client_id="$(identity_field '<client-id>' "$name" clientId)"
  principal_id="$(identity_field '<principal-id>' "$name" principalId)"
  if [ -z "$client_id" ] || [ -z "$principal_id" ]; then
    die "identity $name was not created"
  fi

  local subject="repo:$repo:environment:$environment" existing
  existing="$(ask '' az identity federated-credential show --name "$credential" \
    --identity-name "$name" --resource-group "$group" --query subject --output tsv)"
  if [ -z "$existing" ]; then
    change az identity federated-credential create --name "$credential" --identity-name "$name" \
      --resource-group "$group" --issuer "$OIDC_ISSUER" --subject "$subject" --audiences "$OIDC_AUDIENCE" \
      --output none
  elif [ "$existing" != "$subject" ]; then
    die "federated credential $credential trusts $existing, not $subject: delete it or pick another --identity-name"
  fi
}

create_identity() {
  ensure_identity "$identity" "$CREDENTIAL_NAME" production
}

grant() {
  local role="$1" count
  shift
  count="$(ask 0 az role assignment list --assignee "$principal_id" --role "$role" --scope "$group_id" \
    --query 'length(@)' --output tsv)"
  if [ "${count:-0}" = 0 ]; then
    change az role assignment create --assignee-object-id "$principal_id" \
      --assignee-principal-type ServicePrincipal --role "$role" --scope "$group_id" "$@" --output none
  fi
}

# Least privilege for `az deployment group what-if/create`, the package upload and the smoke test's
# `az functionapp keys list`, all inside this one resource group:
# - Contributor: create and update the template's resources (it cannot grant roles);
# - Role Based Access Control Administrator, restricted by a condition to assigning or removing only the
#   four roles infra/ gives the app's identity, so the deployment cannot grant itself more.
grant_roles() {
  local roles="$STORAGE_BLOB_DATA_OWNER, $MONITORING_METRICS_PUBLISHER, $STORAGE_TABLE_DATA_CONTRIBUTOR, $KEY_VAULT_SECRETS_USER"
  local condition="((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {$roles})) AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {$roles}))"
  grant "$CONTRIBUTOR"
  grant "$RBAC_ADMINISTRATOR" --condition "$condition" --condition-version 2.0
}

# The retraining identity: data roles on this group's storage account only (the group holds one), no
# control-plane role. Table Data Contributor (not Reader): the retention job deletes old ledger days.
create_retrain_identity() {
  deploy_client_id="$client_id"
  ensure_identity "$retrain_identity" "$RETRAIN_CREDENTIAL_NAME" retrain
  retrain_client_id="$client_id"
  grant "$STORAGE_TABLE_DATA_CONTRIBUTOR"
  grant "$STORAGE_BLOB_DATA_READER"
  client_id="$deploy_client_id"
}

configure_github() {
  local environment
  for environment in production retrain; do
    if [ -z "$(ask '' gh api "repos/$repo/environments/$environment" --jq .name)" ]; then
      change gh api --method PUT "repos/$repo/environments/$environment" --silent
    fi
  done
  local name value current
  # The list comes on descriptor 3: gh may read standard input.
  while read -r name value <&3; do
    current="$(ask '' gh variable list --repo "$repo" --json name,value \
      --jq ".[] | select(.name == \"$name\") | .value")"
    if [ "$current" != "$value" ]; then
      change gh variable set "$name" --repo "$repo" --body "$value"
    fi
  done 3<<EOF
AZURE_CLIENT_ID $client_id
AZURE_RETRAIN_CLIENT_ID $retrain_client_id
AZURE_TENANT_ID $tenant
AZURE_SUBSCRIPTION_ID $subscription
AZURE_RESOURCE_GROUP $group
AZURE_ENV_NAME $env_name
ALERT_EMAIL $alert_email
EOF
}

register_providers
create_group
create_identity
grant_roles
create_retrain_identity
configure_github
echo "done: push to main (or run the Deploy workflow) to deploy $repo into $group" >&2

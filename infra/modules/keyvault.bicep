// Key Vault of the prediction-id signing keys (PREDICTION_ID_KEY, PREDICTION_ID_KEY_PREVIOUS).
// RBAC authorization only (no access policies), soft delete + purge protection: a deleted key can be
// recovered, never purged early. The app's identity may read these secrets (Key Vault Secrets User on
// this vault only); the app settings hold Key Vault references, never the values.
// The secrets are created with random values on the first deployment only (createSecrets): a later
// deployment leaves them alone, so a redeploy never rotates the key (docs/how-to/rotate-prediction-id-key.md).

@description('Azure region of the resources.')
param location string

@description('Tags put on every resource.')
param tags object

@description('Key Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param vaultName string

@description('Principal ID of the app\'s user-assigned identity, which reads the secrets.')
param appPrincipalId string

@description('Create the two secrets (first deployment of the environment); false leaves the existing ones.')
param createSecrets bool

@description('Initial value of the current signing key.')
@secure()
param initialKey string

@description('Initial value of the previous signing key (random: no id is signed with it until a rotation).')
@secure()
param initialPreviousKey string

var keySecretName = 'prediction-id-key'
var previousKeySecretName = 'prediction-id-key-previous'
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  //checkov:skip=CKV_AZURE_109:Flex Consumption without VNet integration resolves Key Vault references over the public endpoint; access is RBAC-only
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource key 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (createSecrets) {
  //checkov:skip=CKV_AZURE_41:Rotation follows the documented procedure; an expiry date would stop the app resolving its signing key
  //checkov:skip=CKV_AZURE_114:contentType is set below; checkov reads no property of a conditional (if) resource
  parent: vault
  name: keySecretName
  properties: {
    value: initialKey
    contentType: 'text/plain'
  }
}

resource previousKey 'Microsoft.KeyVault/vaults/secrets@2024-11-01' = if (createSecrets) {
  //checkov:skip=CKV_AZURE_41:Rotation follows the documented procedure; an expiry date would stop the app resolving its signing key
  //checkov:skip=CKV_AZURE_114:contentType is set below; checkov reads no property of a conditional (if) resource
  parent: vault
  name: previousKeySecretName
  properties: {
    value: initialPreviousKey
    contentType: 'text/plain'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output vaultName string = vault.name
output vaultId string = vault.id
// Versionless URIs: the app resolves the latest version of each secret (a rotation needs no deployment).
output keySecretUri string = '${vault.properties.vaultUri}secrets/${keySecretName}/'
output previousKeySecretUri string = '${vault.properties.vaultUri}secrets/${previousKeySecretName}/'

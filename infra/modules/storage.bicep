// Storage account of the Function App: the host's own state (AzureWebJobsStorage) and the
// container that holds the deployment package of the Flex Consumption app.
// No shared keys, no anonymous blobs: every access goes through Microsoft Entra ID.

@description('Azure region of the resources.')
param location string

@description('Tags put on every resource.')
param tags object

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Blob container that receives the deployment package.')
param deploymentContainerName string

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  //checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration needs the public endpoint; access is identity-only (shared keys disabled)
  //checkov:skip=CKV_AZURE_59:Same as CKV_AZURE_35: public endpoint on, identity-only access (shared keys disabled, no anonymous blobs)
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    isLocalUserEnabled: false
    isSftpEnabled: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: storageAccount
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output storageAccountId string = storageAccount.id
output storageAccountName string = storageAccount.name
output blobEndpoint string = storageAccount.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name

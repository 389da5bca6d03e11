// Storage account of the Function App: the host's own state (AzureWebJobsStorage), the container
// that holds the deployment package of the Flex Consumption app, the ledger's tables (`predictions`,
// `feedback`) and the container of the labelled training data the retraining workflow downloads.
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

@description('Blob container holding the labelled training data (the data/ folder of python -m training).')
param trainingDataContainerName string

@description('Tables of the ledger: one row per scored text, one per feedback.')
param ledgerTableNames array

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

resource trainingDataContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobService
  name: trainingDataContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Table Storage has no lifecycle management: rows are partitioned by UTC day and whole days past the
// retention are deleted by the scheduled job of .github/workflows/retrain.yml (docs/how-to/ledger-retention.md).
resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' = {
  parent: storageAccount
  name: 'default'
}

resource ledgerTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' = [for table in ledgerTableNames: {
  parent: tableService
  name: table
}]

output storageAccountId string = storageAccount.id
output storageAccountName string = storageAccount.name
output blobEndpoint string = storageAccount.properties.primaryEndpoints.blob
output deploymentContainerName string = deploymentContainer.name
output trainingDataContainerName string = trainingDataContainer.name
// Without the trailing slash of primaryEndpoints.table: the form LEDGER_TABLE_ENDPOINT documents.
output tableEndpoint string = 'https://${storageAccount.name}.table.${environment().suffixes.storage}'

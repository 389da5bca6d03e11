// The Function App's user-assigned managed identity and the only roles it needs:
// - Storage Blob Data Owner on the storage account: host state (AzureWebJobsStorage) and the
//   deployment package container. The app has HTTP triggers only, so no queue role.
// - Storage Table Data Contributor on the storage account: the ledger's rows (tables `predictions`
//   and `feedback`, read and written by the app).
// - Key Vault Secrets User on the Key Vault of the signing keys: granted in keyvault.bicep, on that
//   vault only.
// - Monitoring Metrics Publisher on Application Insights: Entra-authenticated telemetry ingestion
//   (the component has local authentication disabled).
// A new role assignment takes a few minutes to reach the data plane: on the first deployment of an
// environment the package upload can meet a 403 from storage, so the deploy workflow retries it.

@description('Azure region of the resources.')
param location string

@description('Tags put on every resource.')
param tags object

@description('User-assigned managed identity name.')
param identityName string

@description('Name of the storage account (same resource group) the identity works with.')
param storageAccountName string

@description('Name of the Application Insights component (same resource group) the identity sends to.')
param appInsightsName string

var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'
var storageTableDataContributorRoleId = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: identityName
  location: location
  tags: tags
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, identity.id, storageBlobDataOwnerRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccount.id, identity.id, storageTableDataContributorRoleId)
  scope: storageAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributorRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

output identityId string = identity.id
output identityName string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId

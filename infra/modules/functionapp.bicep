// Flex Consumption plan (FC1, Linux) and the Python 3.13 Function App that serves the model.
// The app runs as the user-assigned identity: it reads its deployment package, keeps its host
// state in blob storage, writes the ledger to Table Storage, resolves its signing keys from Key Vault
// and sends telemetry to Application Insights, all without a stored key.

@description('Azure region of the resources.')
param location string

@description('Tags put on the plan.')
param tags object

@description('Tags put on the Function App (with the service tag the Azure Developer CLI looks for).')
param appTags object

@description('Flex Consumption plan name.')
param planName string

@description('Function App name (globally unique: it is the host name).')
param functionAppName string

@description('Resource ID of the user-assigned managed identity the app runs as.')
param identityId string

@description('Client ID of the user-assigned managed identity.')
param identityClientId string

@description('Storage account of the host state (AzureWebJobsStorage).')
param storageAccountName string

@description('Primary blob endpoint of that storage account, https://<account>.blob.core.windows.net/.')
param blobEndpoint string

@description('Blob container of the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (no secret: local authentication is disabled).')
param appInsightsConnectionString string

@description('Highest number of instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Memory of one instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@description('Most HTTP requests one instance handles at once; more queue or go to a new instance.')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Path of the ONNX model inside the deployment package (MODEL_PATH).')
param modelPath string

@description('Path of the cascade file inside the package, or off (MODEL_ENCODER_PATH).')
param modelEncoderPath string

@description('The stream\'s negative share for prior adaptation, or empty for none (STREAM_NEGATIVE_PRIOR).')
param streamNegativePrior string

@description('Whether WrongPrediction events carry the tweet text (FEEDBACK_INCLUDE_TEXT).')
param feedbackIncludeText bool

@description('Seconds over which each instance sums SentimentScored into one event (SENTIMENT_SCORED_WINDOW_SECONDS).')
@minValue(0)
@maxValue(60)
param scoredWindowSeconds int

@description('Most feedback events one instance sends per minute (FEEDBACK_EVENTS_PER_MINUTE).')
@minValue(1)
param feedbackEventsPerMinute int

@description('Versionless URI of the Key Vault secret holding the current prediction-id signing key.')
param predictionIdKeySecretUri string

@description('Versionless URI of the Key Vault secret holding the previous signing key (accepted during a rotation).')
param predictionIdPreviousKeySecretUri string

@description('Table endpoint of the ledger, https://<account>.table.core.windows.net (LEDGER_TABLE_ENDPOINT).')
param ledgerTableEndpoint string

@description('Whether the ledger also keeps one row per scored text (LEDGER_STORE_PREDICTIONS).')
param ledgerStorePredictions bool

@description('Whether ledger rows keep the text (LEDGER_INCLUDE_TEXT).')
param ledgerIncludeText bool

@description('Days the ledger keeps its rows (LEDGER_RETENTION_DAYS); the retention job deletes older days.')
@minValue(1)
param ledgerRetentionDays int

resource plan 'Microsoft.Web/serverfarms@2024-11-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-11-01' = {
  //checkov:skip=CKV_AZURE_17:Callers authenticate with function keys; client certificates would lock out the public test page and health probe
  name: functionAppName
  location: location
  tags: appTags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    // Key Vault references resolve as this identity (the only one holding Key Vault Secrets User).
    keyVaultReferenceIdentity: identityId
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageAccountName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD;ClientId=${identityClientId}'
        }
        {
          name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY'
          value: 'true'
        }
        {
          name: 'PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME'
          value: 'air_paradis'
        }
        {
          // The worker builds the exporter's queue before the app runs: only a setting can size it.
          // An instance emits at most feedbackEventsPerMinute (600) feedback events + 1 SentimentScored per
          // window + a few log records a minute, so 16,384 queued records (~2 KB each: ~32 MB of the
          // instance's memory) ride out ~25 minutes of slow or failing ingestion at that bound before
          // dropping; the SDK's default 2,048 would drop after ~3.
          name: 'OTEL_BLRP_MAX_QUEUE_SIZE'
          value: '16384'
        }
        {
          name: 'SENTIMENT_SCORED_WINDOW_SECONDS'
          value: string(scoredWindowSeconds)
        }
        {
          name: 'FEEDBACK_EVENTS_PER_MINUTE'
          value: string(feedbackEventsPerMinute)
        }
        {
          name: 'PREDICTION_ID_KEY'
          value: '@Microsoft.KeyVault(SecretUri=${predictionIdKeySecretUri})'
        }
        {
          name: 'PREDICTION_ID_KEY_PREVIOUS'
          value: '@Microsoft.KeyVault(SecretUri=${predictionIdPreviousKeySecretUri})'
        }
        {
          name: 'LEDGER_TABLE_ENDPOINT'
          value: ledgerTableEndpoint
        }
        {
          name: 'LEDGER_STORE_PREDICTIONS'
          value: ledgerStorePredictions ? 'true' : 'false'
        }
        {
          name: 'LEDGER_INCLUDE_TEXT'
          value: ledgerIncludeText ? 'true' : 'false'
        }
        {
          name: 'LEDGER_RETENTION_DAYS'
          value: string(ledgerRetentionDays)
        }
        {
          // The ledger signs in as the app's user-assigned identity, named by its client ID.
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'MODEL_PATH'
          value: modelPath
        }
        {
          name: 'MODEL_ENCODER_PATH'
          value: modelEncoderPath
        }
        {
          name: 'STREAM_NEGATIVE_PRIOR'
          value: streamNegativePrior
        }
        {
          name: 'FEEDBACK_INCLUDE_TEXT'
          value: feedbackIncludeText ? 'true' : 'false'
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            // Set, not left to the platform's default (it follows the instance memory and may change):
            // scoring is CPU-bound in one Python process, so more requests at once only add latency
            // and memory (a large batch holds hundreds of MB). Flex scales out on this number.
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }
}

// Deployments authenticate with Microsoft Entra ID (RBAC), never with publishing passwords.
// ARM rejects these policies without a location (BadRequest 51008 "The parameter location has an invalid value").
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: functionApp
  name: 'ftp'
  location: location
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-11-01' = {
  parent: functionApp
  name: 'scm'
  location: location
  properties: {
    allow: false
  }
}

output functionAppName string = functionApp.name
output functionAppUrl string = 'https://${functionApp.properties.defaultHostName}'
output functionAppId string = functionApp.id

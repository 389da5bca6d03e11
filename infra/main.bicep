// Air Paradis tweet-sentiment service: everything one environment needs, in one resource group.
//   monitoring  Log Analytics workspace + workspace-based Application Insights (local auth off)
//   storage     account without shared keys + the deployment-package container
//   identity    user-assigned managed identity + its role assignments
//   functionapp Flex Consumption plan (FC1, Linux) + the Python 3.13 Function App
//   alerts      action group (e-mail) + the wrong-predictions and bad-buzz log alerts
//   workbook    shared workbook: volume, negative share, wrong-prediction rate, latency, failures
// Deploy: az deployment group create -g <group> -f infra/main.bicep -p infra/main.parameters.json \
//   -p environmentName=<name> alertEmail=<address>   (azd fills environmentName from AZURE_ENV_NAME)

targetScope = 'resourceGroup'

@description('Environment name (dev, test, prod...): part of every resource name and the azd-env-name tag.')
@minLength(1)
@maxLength(12)
param environmentName string

@description('Azure region of the resources (one that offers Flex Consumption).')
param location string = resourceGroup().location

@description('E-mail address that receives the alerts.')
param alertEmail string

@description('Wrong predictions: fire when at least this many WrongPrediction events fall in the window.')
@minValue(1)
param wrongPredictionThreshold int = 3

@description('Wrong predictions: window, ISO 8601 duration.')
@allowed([
  'PT5M'
  'PT10M'
  'PT15M'
  'PT30M'
  'PT1H'
])
param wrongPredictionWindow string = 'PT5M'

@description('Bad buzz: fewest scored texts in the window before the negative share counts.')
@minValue(1)
param badBuzzMinTexts int = 50

@description('Bad buzz: negative share, in percent, at or above which the alert fires.')
@minValue(1)
@maxValue(100)
param badBuzzNegativePercent int = 70

@description('Bad buzz: window, ISO 8601 duration.')
@allowed([
  'PT5M'
  'PT10M'
  'PT15M'
  'PT30M'
  'PT1H'
  'PT2H'
])
param badBuzzWindow string = 'PT30M'

@description('How often the wrong-predictions rule runs: every minute, so any run of threshold events inside one window is caught (windows slide instead of tiling).')
@allowed([
  'PT1M'
  'PT5M'
])
param wrongPredictionEvaluationFrequency string = 'PT1M'

@description('How often the bad-buzz rule runs (at most its window).')
@allowed([
  'PT5M'
  'PT10M'
  'PT15M'
])
param badBuzzEvaluationFrequency string = 'PT5M'

@description('Highest number of Function App instances.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of one Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('HTTP requests one Function App instance serves at once (scoring is CPU-bound: keep it low).')
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 4

@description('Path of the ONNX model inside the deployment package.')
param modelPath string = 'model/sentiment.onnx'

@description('Whether WrongPrediction events carry the tweet text (needed for retraining).')
param feedbackIncludeText bool = true

@description('Days the workspace keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Daily ingestion cap of the workspace in GB (-1: no cap).')
param logDailyQuotaGb int = 1

@description('Extra tags for every resource.')
param tags object = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var commonTags = union(tags, {
  'azd-env-name': environmentName
  project: 'air-paradis-sentiment'
})
var functionAppName = 'func-${environmentName}-${resourceToken}'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: commonTags
    workspaceName: 'log-${environmentName}-${resourceToken}'
    appInsightsName: 'appi-${environmentName}-${resourceToken}'
    retentionInDays: logRetentionDays
    dailyQuotaGb: logDailyQuotaGb
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: commonTags
    storageAccountName: 'st${resourceToken}'
    deploymentContainerName: 'app-package'
  }
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    location: location
    tags: commonTags
    identityName: 'id-${environmentName}-${resourceToken}'
    storageAccountName: storage.outputs.storageAccountName
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: commonTags
    appTags: union(commonTags, {
      'azd-service-name': 'api'
    })
    planName: 'plan-${environmentName}-${resourceToken}'
    functionAppName: functionAppName
    identityId: identity.outputs.identityId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.storageAccountName
    blobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    modelPath: modelPath
    feedbackIncludeText: feedbackIncludeText
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: commonTags
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupName: 'ag-${environmentName}-${resourceToken}'
    actionGroupShortName: 'airparadis'
    alertEmail: alertEmail
    ruleNamePrefix: 'alert-${environmentName}-${resourceToken}'
    wrongPredictionThreshold: wrongPredictionThreshold
    wrongPredictionWindow: wrongPredictionWindow
    badBuzzMinTexts: badBuzzMinTexts
    badBuzzNegativePercent: badBuzzNegativePercent
    badBuzzWindow: badBuzzWindow
    wrongPredictionEvaluationFrequency: wrongPredictionEvaluationFrequency
    badBuzzEvaluationFrequency: badBuzzEvaluationFrequency
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: commonTags
    appInsightsId: monitoring.outputs.appInsightsId
    displayName: 'Air Paradis sentiment (${environmentName})'
  }
}

output functionAppName string = functionApp.outputs.functionAppName
output functionAppUrl string = functionApp.outputs.functionAppUrl
output applicationInsightsName string = monitoring.outputs.appInsightsName
output resourceGroupName string = resourceGroup().name

// Air Paradis tweet-sentiment service: everything one environment needs, in one resource group.
//   monitoring  Log Analytics workspace + workspace-based Application Insights (local auth off)
//   storage     account without shared keys + the deployment-package and training-data containers
//               + the ledger tables (predictions, feedback)
//   identity    user-assigned managed identity + its role assignments
//   keyvault    Key Vault (RBAC, purge protection) of the prediction-id signing keys
//   functionapp Flex Consumption plan (FC1, Linux) + the Python 3.13 Function App
//   alerts      action group (e-mail) + the wrong-predictions, bad-buzz and daily-cap log alerts
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

@description('Optional webhook (HTTPS) that also receives every alert (e.g. the on-call chat); empty = e-mail only.')
@secure()
param alertWebhookUrl string = ''

@description('Topic spike: standard deviations above the usual negative share, in tenths (30 = 3.0).')
@minValue(5)
param topicSpikeSdTenths int = 30

@description('Topic spike: fewest negatives about a topic in the last hour before it can fire.')
@minValue(1)
param topicSpikeMinNegatives int = 15

@description('Topic spike: hours of history behind the usual share (at most 47: log alerts read two days).')
@minValue(6)
@maxValue(47)
param topicSpikeBaselineHours int = 47

@description('Safety topic (severity 0 rule): fewest negatives in the last hour before it can fire.')
@minValue(1)
param safetySpikeMinNegatives int = 5

@description('Topic spike rules: window (the hour compared).')
param topicSpikeWindow string = 'PT1H'

@description('Topic spike rules: evaluation frequency.')
@allowed([
  'PT15M'
  'PT30M'
  'PT1H'
])
param topicSpikeEvaluationFrequency string = 'PT15M'

@description('Topic spike rules: how far back the query reads (the window + the history; two days at most).')
param topicSpikeQueryTimeRange string = 'P2D'

@description('Score drift baseline: the served model\'s validation histogram (metadata validation_histogram; scripts/model_baseline.py prints it for the deploy). The default is a uniform placeholder.')
param scoreBaselineHistogram array = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]

@description('Score drift: PSI above which the rule fires, in hundredths (20 = 0.2, the usual "significant shift").')
@minValue(1)
param scoreDriftMaxPsiHundredths int = 20

@description('Score drift: fewest texts in the window before the PSI counts.')
@minValue(1)
param scoreDriftMinTexts int = 500

@description('Score drift: window.')
param scoreDriftWindow string = 'P1D'

@description('Score drift: evaluation frequency.')
param scoreDriftEvaluationFrequency string = 'PT1H'

@description('Input drift: mean unknown n-gram share above which the rule fires, in percent.')
@minValue(1)
@maxValue(100)
param inputDriftMaxUnknownPercent int = 35

@description('Input drift: share of texts empty after normalization above which the rule fires, in percent.')
@minValue(1)
@maxValue(100)
param inputDriftMaxEmptyPercent int = 20

@description('Input drift: fewest texts in the window before the shares count.')
@minValue(1)
param inputDriftMinTexts int = 100

@description('Input drift: window.')
param inputDriftWindow string = 'PT1H'

@description('Input drift: evaluation frequency.')
param inputDriftEvaluationFrequency string = 'PT15M'

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

@description('Path of the cascade file (the sentence encoder for uncertain tweets) inside the package, or off (MODEL_ENCODER_PATH).')
param modelEncoderPath string = 'model/encoder.onnx'

@description('The stream\'s negative share to adapt the probabilities to, e.g. 0.74 (STREAM_NEGATIVE_PRIOR); empty: as trained. Estimate it with python -m training prior.')
param streamNegativePrior string = ''

@description('Whether WrongPrediction events carry the tweet text (needed for retraining).')
param feedbackIncludeText bool = true

@description('Days the workspace keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// Daily cap = events per instance per minute x instances x event size x 1,440 minutes, with headroom:
// - SentimentScored: 1 per model version per window (60 s) per instance, whatever the traffic:
//   1 x 40 instances x ~1 KB x 1,440 = 0.06 GB/day at full scale-out.
// - Feedback events: a few thousand a day expected (~1.5 KB each with the text): < 0.01 GB/day. The
//   per-instance bound (feedbackEventsPerMinute, 600) is a flood ceiling, not a volume to pay for:
//   600 x 40 x 1.5 KB = 36 MB a minute, which would fill 2 GB in under an hour.
// - Host requests and traces: adaptive sampling keeps them near 20 items/s per busy instance (host.json);
//   ~100,000 predictions a day (~1 KB each) is ~0.1 GB/day.
// Expected total ~0.2 GB/day; 2 GB leaves 10x headroom. Reaching it stops ingestion (and every alert)
// until the daily reset: the daily-cap alert rule tells the on-call person when that happens.
@description('Daily ingestion cap of the workspace in GB (-1: no cap). See the sizing above.')
@minValue(-1)
param logDailyQuotaGb int = 2

@description('Seconds over which each instance sums its SentimentScored events into one (0: one per request).')
@minValue(0)
@maxValue(60)
param scoredWindowSeconds int = 60

@description('Most WrongPrediction/PredictionConfirmed events one instance sends per minute (the ledger keeps every feedback).')
@minValue(1)
@maxValue(6000)
param feedbackEventsPerMinute int = 600

@description('Whether the ledger also keeps one row per scored text (joins feedback to its prediction server-side).')
param ledgerStorePredictions bool = true

@description('Whether ledger rows keep the tweet text (needed to retrain on feedback).')
param ledgerIncludeText bool = true

@description('Days the ledger keeps its rows; the weekly job of .github/workflows/retrain.yml deletes older days.')
@minValue(7)
@maxValue(3650)
param ledgerRetentionDays int = 180

@description('Create the prediction-id signing keys in Key Vault. True only on the first deployment of an environment: the deploy workflow sets it from whether the key exists; true again would rotate the key at once.')
param createPredictionIdKeys bool = true

@description('Random initial value of the current prediction-id signing key (used when createPredictionIdKeys).')
@secure()
//checkov:skip=CKV_AZURE_131:newGuid() is a fresh random value on every deployment, not a hardcoded secret
param predictionIdKeySeed string = newGuid()

@description('Random initial value of the previous prediction-id signing key (used when createPredictionIdKeys).')
@secure()
//checkov:skip=CKV_AZURE_131:newGuid() is a fresh random value on every deployment, not a hardcoded secret
param predictionIdPreviousKeySeed string = newGuid()

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
    trainingDataContainerName: 'training-data'
    ledgerTableNames: [
      'predictions'
      'feedback'
    ]
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

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    tags: commonTags
    vaultName: 'kv-${resourceToken}'
    appPrincipalId: identity.outputs.principalId
    createSecrets: createPredictionIdKeys
    initialKey: predictionIdKeySeed
    initialPreviousKey: predictionIdPreviousKeySeed
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
    modelEncoderPath: modelEncoderPath
    streamNegativePrior: streamNegativePrior
    feedbackIncludeText: feedbackIncludeText
    scoredWindowSeconds: scoredWindowSeconds
    feedbackEventsPerMinute: feedbackEventsPerMinute
    predictionIdKeySecretUri: keyVault.outputs.keySecretUri
    predictionIdPreviousKeySecretUri: keyVault.outputs.previousKeySecretUri
    ledgerTableEndpoint: storage.outputs.tableEndpoint
    ledgerStorePredictions: ledgerStorePredictions
    ledgerIncludeText: ledgerIncludeText
    ledgerRetentionDays: ledgerRetentionDays
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: commonTags
    appInsightsId: monitoring.outputs.appInsightsId
    workspaceId: monitoring.outputs.workspaceId
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
    alertWebhookUrl: alertWebhookUrl
    topicSpikeSdTenths: topicSpikeSdTenths
    topicSpikeMinNegatives: topicSpikeMinNegatives
    topicSpikeBaselineHours: topicSpikeBaselineHours
    safetySpikeMinNegatives: safetySpikeMinNegatives
    topicSpikeWindow: topicSpikeWindow
    topicSpikeEvaluationFrequency: topicSpikeEvaluationFrequency
    topicSpikeQueryTimeRange: topicSpikeQueryTimeRange
    scoreBaselineHistogram: scoreBaselineHistogram
    scoreDriftMaxPsiHundredths: scoreDriftMaxPsiHundredths
    scoreDriftMinTexts: scoreDriftMinTexts
    scoreDriftWindow: scoreDriftWindow
    scoreDriftEvaluationFrequency: scoreDriftEvaluationFrequency
    inputDriftMaxUnknownPercent: inputDriftMaxUnknownPercent
    inputDriftMaxEmptyPercent: inputDriftMaxEmptyPercent
    inputDriftMinTexts: inputDriftMinTexts
    inputDriftWindow: inputDriftWindow
    inputDriftEvaluationFrequency: inputDriftEvaluationFrequency
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: commonTags
    appInsightsId: monitoring.outputs.appInsightsId
    displayName: 'Air Paradis sentiment (${environmentName})'
    scoreBaselineHistogram: scoreBaselineHistogram
  }
}

output functionAppName string = functionApp.outputs.functionAppName
output functionAppUrl string = functionApp.outputs.functionAppUrl
output applicationInsightsName string = monitoring.outputs.appInsightsName
output resourceGroupName string = resourceGroup().name
// The retraining workflow's LEDGER_TABLE_ENDPOINT and TRAINING_DATA_CONTAINER repository variables.
output ledgerTableEndpoint string = storage.outputs.tableEndpoint
output trainingDataContainer string = '${storage.outputs.blobEndpoint}${storage.outputs.trainingDataContainerName}'
output keyVaultName string = keyVault.outputs.vaultName

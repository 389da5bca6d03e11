// Shared Azure Monitor workbook on the Application Insights component: prediction volume,
// negative share, wrong-prediction rate, request latency and failures, per-topic volume and negative
// share, score histogram and PSI against the validation baseline, unknown share, over the chosen time range.
// Every query comes from infra/queries/workbook-*.kql; the workbook only swaps the fixed bin size
// of each file for the grain of its time-range parameter.

@description('Azure region of the workbook.')
param location string

@description('Tags put on the workbook.')
param tags object

@description('Application Insights component the workbook reads.')
param appInsightsId string

@description('Name shown in the portal.')
param displayName string

@description('The served model\'s validation score histogram (10 counts over [0, 1)): the score panels\' baseline.')
param scoreBaselineHistogram array = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]

// The score panels' files hold a placeholder baseline line; the deployed baseline replaces it.
var baselineLine = 'let baseline = dynamic([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);'
var scoreBaselineLiteral = string(scoreBaselineHistogram)
var deployedBaselineLine = 'let baseline = dynamic(${scoreBaselineLiteral});'

var fixedGrain = 'let grain = 15m;'
var rangeGrain = 'let grain = {TimeRange:grain};'

var panels = [
  {
    name: 'prediction-volume'
    title: 'Prediction volume (texts scored, predict requests)'
    query: loadTextContent('../queries/workbook-prediction-volume.kql')
  }
  {
    name: 'negative-share'
    title: 'Negative share of scored texts'
    query: loadTextContent('../queries/workbook-negative-share.kql')
  }
  {
    name: 'wrong-prediction-rate'
    title: 'Wrong-prediction rate (share of feedback saying "wrong")'
    query: loadTextContent('../queries/workbook-wrong-prediction-rate.kql')
  }
  {
    name: 'request-latency'
    title: 'Request latency, ms (p50, p95, p99)'
    query: loadTextContent('../queries/workbook-request-latency.kql')
  }
  {
    name: 'request-failures'
    title: 'Requests and failures'
    query: loadTextContent('../queries/workbook-request-failures.kql')
  }
  {
    name: 'topic-volume'
    title: 'Topics: texts per airline topic'
    query: loadTextContent('../queries/workbook-topic-volume.kql')
  }
  {
    name: 'topic-negative-share'
    title: 'Topics: negative share per airline topic'
    query: loadTextContent('../queries/workbook-topic-negative-share.kql')
  }
  {
    name: 'score-histogram'
    title: 'Score histogram: share of texts per score bin minus the validation baseline'
    query: replace(loadTextContent('../queries/workbook-score-histogram.kql'), baselineLine, deployedBaselineLine)
  }
  {
    name: 'score-psi'
    title: 'Score drift: PSI against the validation baseline (alert above 0.2)'
    query: replace(loadTextContent('../queries/workbook-score-psi.kql'), baselineLine, deployedBaselineLine)
  }
  {
    name: 'unknown-share'
    title: 'Input drift: unknown n-gram share and empty texts'
    query: loadTextContent('../queries/workbook-unknown-share.kql')
  }
]

var header = {
  type: 1
  name: 'title'
  content: {
    json: '## Air Paradis sentiment service\nWhat the model sees, what users say about its answers, and how the Function App behaves.'
  }
}

var timeRangeParameter = {
  type: 9
  name: 'parameters'
  content: {
    version: 'KqlParameterItem/1.0'
    style: 'pills'
    queryType: 0
    resourceType: 'microsoft.insights/components'
    parameters: [
      {
        id: 'f4c1d2a8-3b0e-4c55-9d61-2a7e5b8c9d10'
        version: 'KqlParameterItem/1.0'
        name: 'TimeRange'
        label: 'Time range'
        type: 4
        isRequired: true
        value: {
          durationMs: 86400000
        }
        typeSettings: {
          allowCustom: true
          selectableValues: [
            {
              durationMs: 3600000
            }
            {
              durationMs: 14400000
            }
            {
              durationMs: 86400000
            }
            {
              durationMs: 604800000
            }
            {
              durationMs: 2592000000
            }
          ]
        }
      }
    ]
  }
}

var queryItems = [for panel in panels: {
  type: 3
  name: panel.name
  content: {
    version: 'KqlItem/1.0'
    title: panel.title
    query: replace(panel.query, fixedGrain, rangeGrain)
    size: 0
    queryType: 0
    resourceType: 'microsoft.insights/components'
    timeContextFromParameter: 'TimeRange'
    visualization: 'timechart'
  }
}]

var workbookContent = {
  version: 'Notebook/1.0'
  items: concat([header, timeRangeParameter], queryItems)
  fallbackResourceIds: [
    appInsightsId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsId, displayName)
  location: location
  tags: union(tags, { 'hidden-title': displayName })
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    // Lower case, as the portal stores resource IDs: otherwise the workbook is not listed on the component.
    sourceId: toLower(appInsightsId)
    version: 'Notebook/1.0'
    serializedData: string(workbookContent)
  }
}

output workbookId string = workbook.id

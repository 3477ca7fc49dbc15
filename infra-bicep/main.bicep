// The Integration Platform in one resource group: fourteen Flex Consumption Function Apps
// (one per service, generated from the `apps` list), the Service Bus topology of the
// messaging design, Cosmos DB, Storage, Key Vault, monitoring, and the role assignments of
// the apps' managed identities. No keys or connection strings reach app settings: every
// connection is identity-based.
//
// Deploy: see README.md beside this file.

targetScope = 'resourceGroup'

@description('Short environment name used in every resource name, such as dev, test or prod (lower-case letters and digits).')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Audience of the bearer tokens the apps accept (AUTH_AUDIENCE): the Application ID URI or client id of the platform\'s Entra app registration; comma-separated for several.')
param authAudience string

@description('Issuer of the bearer tokens (AUTH_ISSUER). Defaults to the v2.0 issuer of the deploying tenant.')
param authIssuer string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'

@description('Signing keys of the issuer (AUTH_JWKS_URI). Defaults to the deploying tenant\'s keys.')
param authJwksUri string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/discovery/v2.0/keys'

@description('Days that raw inbound webhook bodies and outbound payloads are kept in Blob Storage.')
@minValue(1)
param payloadRetentionDays int = 30

@description('Most instances each Function App may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of each Function App instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// The fourteen apps. Each gets a Function App, a deployment container and its role
// assignments; nothing else lists them.
var apps = [
  'registry'
  'webhook-gateway'
  'github'
  'azure-devops'
  'openai'
  'azure-openai'
  'ollama'
  'mcp'
  'cloud'
  'email'
  'sms'
  'payment'
  'crm'
  'support'
]

// The two platform apps; every other app talks to vendors and has a queue of run commands.
var platformApps = [
  'registry'
  'webhook-gateway'
]
var vendorApps = filter(apps, app => !contains(platformApps, app))

// Messaging (the same entities the embedded broker builds from the code's topology).
var eventsTopic = 'integration-events'
var runsQueues = [for app in vendorApps: {
  name: 'runs-${app}'
  requiresSession: false
}]
var sharedQueues = [
  {
    name: 'webhook-deliveries'
    requiresSession: false
  }
  {
    // Deliveries to ordered subscriptions: one session per subscription and ordering key.
    name: 'webhook-deliveries-ordered'
    requiresSession: true
  }
  {
    name: 'credential-rotations'
    requiresSession: false
  }
]
// One subscription per consuming app, with the SQL form of the app's filter.
var topicSubscriptions = [
  {
    name: 'webhook-gateway'
    sqlFilter: '[type] NOT IN (\'connectsoft.integration.webhook.delivered.v1\', \'connectsoft.integration.webhook.subscribed.v1\', \'connectsoft.integration.provider.registered.v1\', \'connectsoft.integration.client.registered.v1\')'
  }
]

// Document containers (partition key /tenantId): the platform apps' own, and one per
// vendor app named after it (the integration kit's convention). Then the blob containers.
var cosmosDatabaseName = 'integration'
var platformContainers = [
  'registry'
  'webhooks'
]
var cosmosContainers = concat(platformContainers, vendorApps)
// Least privilege: each app writes only its own containers. Vendor apps read the registry's
// (credential references, catalogue, rate-limit hints); the webhook gateway reads the vendor
// apps' (a source's connection); the registry reads no other.
var cosmosAccess = {
  registry: {
    writes: [
      'registry'
    ]
    // A credential's connection is checked in the app that serves its provider.
    reads: vendorApps
  }
  'webhook-gateway': {
    writes: [
      'webhooks'
    ]
    reads: vendorApps
  }
}
var vendorCosmosReads = [
  'registry'
]
var payloadContainers = [
  'webhooks-raw'
  'webhooks-outbound'
]
// Vendor apps' run inputs and large outputs, kept as long as their runs.
var runContainers = [
  'runs-input'
  'runs-output'
]

// Globally unique names: the environment plus a hash of the resource group.
var env = toLower(environmentName)
// Storage account names allow letters and digits only.
var compactEnv = replace(env, '-', '')
var suffix = uniqueString(resourceGroup().id, env)
var shortSuffix = take(suffix, 6)
var tags = {
  platform: 'integration-platform'
  environment: env
}
var functionAppNames = [for app in apps: 'func-${env}-${app}-${shortSuffix}']
// Apps reach each other by their public addresses.
var registryUrl = 'https://${functionAppNames[indexOf(apps, 'registry')]}.azurewebsites.net'
var webhookGatewayUrl = 'https://${functionAppNames[indexOf(apps, 'webhook-gateway')]}.azurewebsites.net'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: 'log-${env}-${shortSuffix}'
    appInsightsName: 'appi-${env}-${shortSuffix}'
    location: location
    tags: tags
  }
}

// The Functions host's own storage (leases, timer state) and the deployment packages.
module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  params: {
    name: take('sth${compactEnv}${suffix}', 24)
    location: location
    tags: tags
    containers: [for app in apps: 'deploy-${app}']
    retentionDays: 0
    retainedContainers: []
  }
}

// The apps' data: raw inbound webhook bodies and outbound payloads, kept for a while.
module dataStorage 'modules/storage.bicep' = {
  name: 'data-storage'
  params: {
    name: take('std${compactEnv}${suffix}', 24)
    location: location
    tags: tags
    containers: concat(payloadContainers, runContainers)
    retentionDays: payloadRetentionDays
    retainedContainers: payloadContainers
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'service-bus'
  params: {
    name: 'sb-${env}-${suffix}'
    location: location
    tags: tags
    queues: concat(runsQueues, sharedQueues)
    topicName: eventsTopic
    subscriptions: topicSubscriptions
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    accountName: 'cosmos-${env}-${suffix}'
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    containers: cosmosContainers
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'key-vault'
  params: {
    name: take('kv${compactEnv}${suffix}', 24)
    location: location
    tags: tags
  }
}

module functionApps 'modules/functionapp.bicep' = [for (app, i) in apps: {
  name: 'app-${app}'
  params: {
    name: functionAppNames[i]
    slug: app
    location: location
    tags: tags
    hostStorageName: hostStorage.outputs.name
    deploymentContainerUrl: '${hostStorage.outputs.blobEndpoint}deploy-${app}'
    appInsightsConnectionString: monitoring.outputs.connectionString
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabase: cosmosDatabaseName
    blobServiceUri: dataStorage.outputs.blobEndpoint
    keyVaultUri: keyVault.outputs.vaultUri
    registryUrl: registryUrl
    webhookGatewayUrl: webhookGatewayUrl
    authIssuer: authIssuer
    authAudience: authAudience
    authJwksUri: authJwksUri
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    payloadRetentionDays: payloadRetentionDays
  }
}]

module roles 'modules/roles.bicep' = [for (app, i) in apps: {
  name: 'roles-${app}'
  params: {
    principalId: functionApps[i].outputs.principalId
    // The registry is the only writer of secrets; everyone else reads them.
    writesSecrets: app == 'registry'
    serviceBusName: serviceBus.outputs.name
    cosmosAccountName: cosmos.outputs.name
    cosmosDatabaseName: cosmosDatabaseName
    cosmosMetadataRoleId: cosmos.outputs.metadataReaderRoleId
    writesContainers: contains(cosmosAccess, app) ? cosmosAccess[app].writes : [
      app
    ]
    readsContainers: contains(cosmosAccess, app) ? cosmosAccess[app].reads : vendorCosmosReads
    hostStorageName: hostStorage.outputs.name
    dataStorageName: dataStorage.outputs.name
    keyVaultName: keyVault.outputs.name
  }
}]

// What the app settings carry, for tools and for running a handler elsewhere against the
// same resources.
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output cosmosEndpoint string = cosmos.outputs.endpoint
output cosmosDatabase string = cosmosDatabaseName
output blobServiceUri string = dataStorage.outputs.blobEndpoint
output keyVaultUri string = keyVault.outputs.vaultUri
output registryUrl string = registryUrl
output webhookGatewayUrl string = webhookGatewayUrl
// Where to publish each app's package (`cargo xtask package` writes target/package/<slug>.zip).
output functionApps array = [for (app, i) in apps: {
  slug: app
  name: functionApps[i].outputs.name
  url: 'https://${functionApps[i].outputs.defaultHostName}'
}]

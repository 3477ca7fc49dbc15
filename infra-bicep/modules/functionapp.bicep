// One app: a Flex Consumption plan and its Function App (Linux, custom handler runtime,
// system-assigned identity), deployed from a blob container with that identity. The app
// settings are the only place setting names appear in the Bicep; they are the names the
// code reads, and every connection is identity-based (no keys).

param name string
@description('The app\'s slug (registry, webhook-gateway, github, ...).')
param slug string
param location string
param tags object
@description('The host storage account (AzureWebJobsStorage, through the identity).')
param hostStorageName string
@description('The blob container URL the package is deployed to.')
param deploymentContainerUrl string
param appInsightsConnectionString string
@description('<namespace>.servicebus.windows.net')
param serviceBusNamespace string
param cosmosEndpoint string
param cosmosDatabase string
param blobServiceUri string
param keyVaultUri string
param registryUrl string
param webhookGatewayUrl string
param authIssuer string
param authAudience string
param authJwksUri string
param maximumInstanceCount int
param instanceMemoryMB int
@description('Days raw webhook bodies, outbound payloads and the gateway\'s records of them are kept (PAYLOAD_RETENTION_DAYS).')
param payloadRetentionDays int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
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

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    app: slug
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      // Flex Consumption's custom-handler stack: the host starts the executable host.json
      // names (FUNCTIONS_WORKER_RUNTIME is not an app setting on this plan).
      runtime: {
        name: 'custom'
        version: '1.0'
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: hostStorageName
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsightsConnectionString
        }
        {
          // Read by the host for the Service Bus triggers and by the app's sender.
          name: 'ServiceBusConnection__fullyQualifiedNamespace'
          value: serviceBusNamespace
        }
        {
          name: 'CosmosDbConnection__accountEndpoint'
          value: cosmosEndpoint
        }
        {
          name: 'COSMOS_DATABASE'
          value: cosmosDatabase
        }
        {
          name: 'BlobStorageConnection__blobServiceUri'
          value: blobServiceUri
        }
        {
          name: 'KeyVaultConnection__vaultUri'
          value: keyVaultUri
        }
        {
          name: 'REGISTRY_URL'
          value: registryUrl
        }
        {
          name: 'WEBHOOK_GATEWAY_URL'
          value: webhookGatewayUrl
        }
        {
          name: 'AUTH_ISSUER'
          value: authIssuer
        }
        {
          name: 'AUTH_AUDIENCE'
          value: authAudience
        }
        {
          name: 'AUTH_JWKS_URI'
          value: authJwksUri
        }
        {
          name: 'PAYLOAD_RETENTION_DAYS'
          value: string(payloadRetentionDays)
        }
      ]
    }
  }
}

output name string = site.name
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName

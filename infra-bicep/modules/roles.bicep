// What one app's managed identity may do: send and receive on Service Bus, read and write
// the documents of its own containers and read those of the containers it is allowed to read
// (Cosmos DB data roles scoped per container), read and write blobs, use the host storage,
// and read secrets (the registry, the only writer of secrets, may also write them).

param principalId string
@description('Whether the app writes secrets (Key Vault Secrets Officer) or only reads them (Secrets User).')
param writesSecrets bool
param serviceBusName string
param cosmosAccountName string
param cosmosDatabaseName string
@description('The resource id of the account\'s metadata-only role (cosmos.bicep).')
param cosmosMetadataRoleId string
@description('Cosmos DB containers the app writes (its own).')
param writesContainers array
@description('Cosmos DB containers the app only reads (another app\'s).')
param readsContainers array
param hostStorageName string
param dataStorageName string
param keyVaultName string

// Built-in role definitions (the same ids in every subscription).
var serviceBusDataSender = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var serviceBusDataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
// Cosmos DB's built-in data-plane roles (SQL role definitions, not Azure RBAC roles).
var cosmosDataReader = '00000000-0000-0000-0000-000000000001'
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusName
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosAccountName
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource busRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in [
  serviceBusDataSender
  serviceBusDataReceiver
]: {
  name: guid(serviceBus.id, principalId, role)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// The host's own storage: AzureWebJobsStorage through an identity needs blob owner rights
// (leases), and the deployment package is read from it.
resource hostStorageRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, principalId, storageBlobDataOwner)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource dataStorageRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dataStorage.id, principalId, storageBlobDataContributor)
  scope: dataStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, writesSecrets ? keyVaultSecretsOfficer : keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', writesSecrets ? keyVaultSecretsOfficer : keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Account metadata at account scope; data only per container.
resource cosmosMetadata 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: cosmos
  name: guid(cosmos.id, principalId, 'metadata')
  properties: {
    roleDefinitionId: cosmosMetadataRoleId
    principalId: principalId
    scope: cosmos.id
  }
}

resource cosmosWrites 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [for container in writesContainers: {
  parent: cosmos
  name: guid(cosmos.id, principalId, cosmosDataContributor, container)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: principalId
    scope: '${cosmos.id}/dbs/${cosmosDatabaseName}/colls/${container}'
  }
}]

resource cosmosReads 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = [for container in readsContainers: {
  parent: cosmos
  name: guid(cosmos.id, principalId, cosmosDataReader, container)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataReader}'
    principalId: principalId
    scope: '${cosmos.id}/dbs/${cosmosDatabaseName}/colls/${container}'
  }
}]

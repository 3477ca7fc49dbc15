// The Cosmos DB account (serverless, Entra-only data access), the platform's database and
// the apps' containers, all partitioned by /tenantId.

param accountName string
param location string
param tags object
param databaseName string

@description('Container names.')
param containers array

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: accountName
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    // Keys off: data access only through Entra identities and SQL role assignments.
    disableLocalAuth: true
    minimalTlsVersion: 'Tls12'
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

// TTL is on with no default expiry (-1) in every container: the document port lets any
// write carry a time to live, and Cosmos DB honours an item's ttl only when its container
// has TTL on. Retention is by TTL, never by a cleaner.
resource sqlContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [for container in containers: {
  parent: database
  name: container
  properties: {
    resource: {
      id: container
      partitionKey: {
        paths: [
          '/tenantId'
        ]
        kind: 'Hash'
        version: 2
      }
      defaultTtl: -1
    }
  }
}]

// Account metadata only (what a client reads on connecting): every app gets it at account
// scope, and its data roles only on the containers it uses.
resource metadataReader 'Microsoft.DocumentDB/databaseAccounts/sqlRoleDefinitions@2024-11-15' = {
  parent: account
  name: guid(account.id, 'metadata-reader')
  properties: {
    roleName: 'Integration Platform metadata reader'
    type: 'CustomRole'
    assignableScopes: [
      account.id
    ]
    permissions: [
      {
        dataActions: [
          'Microsoft.DocumentDB/databaseAccounts/readMetadata'
        ]
      }
    ]
  }
}

output name string = account.name
output metadataReaderRoleId string = metadataReader.id
output endpoint string = account.properties.documentEndpoint

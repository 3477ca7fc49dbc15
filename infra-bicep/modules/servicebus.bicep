// The Service Bus namespace and entities: the events topic with one subscription per
// consuming app, and the queues. Every entity detects duplicates (the outbox may send an
// event twice after a crash; MessageId is the envelope id), dead-letters after 10
// deliveries, and dead-letters messages that expire (a message given a time to live never
// vanishes silently). Local (SAS) auth is off: apps use their managed identities.

param name string
param location string
param tags object

@description('Queues: objects with name and requiresSession.')
param queues array

@description('The topic every platform event goes to.')
param topicName string

@description('Subscriptions to the topic: objects with name and sqlFilter.')
param subscriptions array

// The platform's entity defaults (ports::EntitySpec::default in the code).
var maxDeliveryCount = 10
var lockDuration = 'PT1M'
var duplicateDetectionWindow = 'PT10M'

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  // Topics, sessions and duplicate detection need the Standard tier.
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queueEntities 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for queue in queues: {
  parent: namespace
  name: queue.name
  properties: {
    requiresSession: queue.requiresSession
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    deadLetteringOnMessageExpiration: true
  }
}]

resource topic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: topicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
  }
}

resource topicSubscriptions 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = [for subscription in subscriptions: {
  parent: topic
  name: subscription.name
  properties: {
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    deadLetteringOnMessageExpiration: true
    deadLetteringOnFilterEvaluationExceptions: true
  }
}]

// Named $Default so it replaces the match-everything rule Service Bus gives every new
// subscription (rules are OR-ed: a second rule would filter nothing).
resource subscriptionRules 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2024-01-01' = [for (subscription, i) in subscriptions: {
  parent: topicSubscriptions[i]
  name: '$Default'
  properties: {
    filterType: 'SqlFilter'
    sqlFilter: {
      sqlExpression: subscription.sqlFilter
    }
  }
}]

output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'

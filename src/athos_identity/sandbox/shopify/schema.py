"""The subset of the Shopify GraphQL Admin API schema the sandbox serves (SDL).

Kept as a Python string so it ships inside the wheel without package-data settings.
"""

SDL = """
scalar DateTime
scalar Decimal
scalar URL
scalar UnsignedInt64

enum CurrencyCode { USD CAD GBP EUR }
enum CountryCode { US CA GB FR DE }
enum CountPrecision { EXACT AT_LEAST }
enum CustomerSortKeys { ID UPDATED_AT CREATED_AT NAME RELEVANCE }
enum OrderSortKeys { ID UPDATED_AT CREATED_AT PROCESSED_AT RELEVANCE }
enum OrderDisplayFinancialStatus {
  AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED
}
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationType { MUTATION QUERY }
enum WebhookSubscriptionFormat { JSON XML }
enum WebhookSubscriptionTopic {
  APP_UNINSTALLED CUSTOMERS_CREATE CUSTOMERS_UPDATE CUSTOMERS_DELETE
  ORDERS_CREATE ORDERS_UPDATED ORDERS_DELETE
}

type Query {
  shop: Shop!
  currentAppInstallation: AppInstallation!
  customers(first: Int, after: String, last: Int, before: String,
            sortKey: CustomerSortKeys = ID, reverse: Boolean = false,
            query: String): CustomerConnection
  orders(first: Int, after: String, last: Int, before: String,
         sortKey: OrderSortKeys = ID, reverse: Boolean = false,
         query: String): OrderConnection
  customer(id: ID!): Customer
  order(id: ID!): Order
  customersCount(query: String, limit: Int = 10000): Count
  ordersCount(query: String, limit: Int = 10000): Count
  bulkOperation(id: ID!): BulkOperation
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
  webhookSubscriptions(first: Int, after: String): WebhookSubscriptionConnection
}

type Mutation {
  bulkOperationRunQuery(query: String!, groupObjects: Boolean): BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
  appRevokeAccessScopes(scopes: [String!]!): AppRevokeAccessScopesPayload
  appUninstall: AppUninstallPayload
  webhookSubscriptionCreate(topic: WebhookSubscriptionTopic!,
                            webhookSubscription: WebhookSubscriptionInput!):
    WebhookSubscriptionCreatePayload
  webhookSubscriptionDelete(id: ID!): WebhookSubscriptionDeletePayload
}

type Shop {
  id: ID!
  name: String!
  email: String!
  myshopifyDomain: String!
  currencyCode: CurrencyCode!
  ianaTimezone: String!
  billingAddress: ShopAddress!
  plan: ShopPlan!
}
type ShopAddress { countryCodeV2: CountryCode, country: String, city: String }
type ShopPlan { displayName: String!, partnerDevelopment: Boolean!, shopifyPlus: Boolean! }

type AppInstallation { id: ID!, accessScopes: [AccessScope!]! }
type AccessScope { handle: String!, description: String! }

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}
type Count { count: Int!, precision: CountPrecision! }

type CustomerConnection { edges: [CustomerEdge!]!, nodes: [Customer!]!, pageInfo: PageInfo! }
type CustomerEdge { cursor: String!, node: Customer! }
type Customer {
  id: ID!
  legacyResourceId: UnsignedInt64!
  firstName: String
  lastName: String
  displayName: String!
  email: String
  phone: String
  createdAt: DateTime!
  updatedAt: DateTime!
  numberOfOrders: UnsignedInt64!
  defaultEmailAddress: CustomerEmailAddress
  defaultPhoneNumber: CustomerPhoneNumber
  defaultAddress: MailingAddress
}
type CustomerEmailAddress { emailAddress: String, marketingState: String }
type CustomerPhoneNumber { phoneNumber: String!, marketingState: String }
type MailingAddress {
  id: ID
  phone: String
  firstName: String
  lastName: String
  address1: String
  city: String
  country: String
  countryCodeV2: CountryCode
}

type OrderConnection { edges: [OrderEdge!]!, nodes: [Order!]!, pageInfo: PageInfo! }
type OrderEdge { cursor: String!, node: Order! }
type Order {
  id: ID!
  legacyResourceId: UnsignedInt64!
  name: String!
  email: String
  phone: String
  customer: Customer
  createdAt: DateTime!
  updatedAt: DateTime!
  processedAt: DateTime!
  currencyCode: CurrencyCode!
  totalPriceSet: MoneyBag!
  subtotalPriceSet: MoneyBag
  displayFinancialStatus: OrderDisplayFinancialStatus
  billingAddress: MailingAddress
  lineItems(first: Int, after: String, last: Int, before: String): LineItemConnection!
}
type MoneyBag { shopMoney: MoneyV2!, presentmentMoney: MoneyV2! }
type MoneyV2 { amount: Decimal!, currencyCode: CurrencyCode! }
type LineItemConnection { edges: [LineItemEdge!]!, nodes: [LineItem!]!, pageInfo: PageInfo! }
type LineItemEdge { cursor: String!, node: LineItem! }
type LineItem {
  id: ID!
  name: String!
  title: String!
  quantity: Int!
  sku: String
  product: Product
  variant: ProductVariant
  originalUnitPriceSet: MoneyBag!
  originalTotalSet: MoneyBag!
}
type Product { id: ID!, title: String! }
type ProductVariant { id: ID!, sku: String, title: String! }

type BulkOperation {
  id: ID!
  status: BulkOperationStatus!
  errorCode: BulkOperationErrorCode
  createdAt: DateTime!
  completedAt: DateTime
  objectCount: UnsignedInt64!
  rootObjectCount: UnsignedInt64!
  fileSize: UnsignedInt64
  url: URL
  partialDataUrl: URL
  query: String!
  type: BulkOperationType!
}
type BulkOperationUserError { field: [String!], message: String!, code: String }
type BulkOperationRunQueryPayload {
  bulkOperation: BulkOperation
  userErrors: [BulkOperationUserError!]!
}
type BulkOperationCancelPayload { bulkOperation: BulkOperation, userErrors: [UserError!]! }

type UserError { field: [String!], message: String! }
enum AppRevokeAccessScopesAppRevokeScopeErrorCode {
  APP_NOT_INSTALLED APPLICATION_CANNOT_BE_FOUND CANNOT_REVOKE_IMPLIED_SCOPES
  CANNOT_REVOKE_REQUIRED_SCOPES CANNOT_REVOKE_UNDECLARED_SCOPES MISSING_SOURCE_APP UNKNOWN_SCOPES
}
type AppRevokeAccessScopesAppRevokeScopeError {
  field: [String!], message: String!, code: AppRevokeAccessScopesAppRevokeScopeErrorCode
}
type AppRevokeAccessScopesPayload {
  revoked: [AccessScope!]
  userErrors: [AppRevokeAccessScopesAppRevokeScopeError!]!
}
type App { id: ID!, title: String! }
type AppUninstallPayload { app: App, userErrors: [UserError!]! }

input WebhookSubscriptionInput {
  callbackUrl: URL
  uri: String
  format: WebhookSubscriptionFormat
  includeFields: [String!]
}
type WebhookSubscription {
  id: ID!
  topic: WebhookSubscriptionTopic!
  uri: String!
  callbackUrl: URL
  format: WebhookSubscriptionFormat!
  createdAt: DateTime!
}
type WebhookSubscriptionConnection {
  edges: [WebhookSubscriptionEdge!]!
  nodes: [WebhookSubscription!]!
  pageInfo: PageInfo!
}
type WebhookSubscriptionEdge { cursor: String!, node: WebhookSubscription! }
type WebhookSubscriptionCreatePayload {
  webhookSubscription: WebhookSubscription
  userErrors: [UserError!]!
}
type WebhookSubscriptionDeletePayload {
  deletedWebhookSubscriptionId: ID
  userErrors: [UserError!]!
}
"""

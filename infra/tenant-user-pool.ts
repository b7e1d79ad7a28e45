import { type Duration, Stack, Validations } from 'aws-cdk-lib';
import {
  OAuthScope,
  ResourceServerScope,
  UserPool,
  type UserPoolClient,
  type UserPoolDomain,
  type UserPoolResourceServer,
} from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';
import type { Route } from '../core/api/routes.ts';
import { appClientDefaults, userPoolDefaults, withDefaults } from './secure-defaults.ts';

/** The OAuth resource server of the API; its scopes are `descent/read` and `descent/write`. */
export const RESOURCE_SERVER_ID = 'descent';

/** The scopes the route table may ask for, as the resource server names them. */
export const SCOPES = {
  'descent/read': { name: 'read', description: 'Read jobs, metrics and results' },
  'descent/write': { name: 'write', description: 'Create datasets, submit, cancel and delete jobs' },
} as const satisfies Record<NonNullable<Route['scope']>, { name: string; description: string }>;

export interface TenantUserPoolProps {
  /**
   * One OAuth app client (client-credentials grant, with a secret) is created per name. The tenant of
   * a request is the app client id of its access token (`functions/http.ts`), not this name, which is
   * only a label in the console.
   * @default ['default']
   */
  readonly tenants?: readonly string[];
  /**
   * Prefix of the Cognito domain that serves the token endpoint: lowercase letters, digits and
   * hyphens, unique in the region, and without `aws`, `amazon` or `cognito`.
   * @default - `descent-` followed by the account id
   */
  readonly domainPrefix?: string;
  /**
   * How long an access token is valid.
   * @default Duration.hours(1)
   */
  readonly accessTokenValidity?: Duration;
}

/**
 * The Cognito user pool that issues the API's access tokens: no users and no sign-up, only one
 * machine-to-machine app client per tenant, a resource server with the `read` and `write` scopes, and
 * a domain whose `/oauth2/token` endpoint serves the client-credentials grant.
 */
export class TenantUserPool extends Construct {
  /** The user pool. */
  public readonly userPool: UserPool;
  /** The `descent` resource server that defines the scopes. */
  public readonly resourceServer: UserPoolResourceServer;
  /** The domain that serves the token endpoint. */
  public readonly domain: UserPoolDomain;
  /** One app client per tenant, in the order of `tenants`. */
  public readonly clients: readonly UserPoolClient[];
  /** The client-credentials token endpoint. */
  public readonly tokenUrl: string;

  constructor(scope: Construct, id: string, props: TenantUserPoolProps = {}) {
    super(scope, id);
    this.userPool = new UserPool(this, 'UserPool', userPoolDefaults());
    Validations.of(this.userPool).acknowledge({
      id: 'AwsSolutions-COG8',
      reason:
        'The Plus plan adds threat protection for user sign-ins; this pool has no users, only client-credentials app clients.',
    });

    const serverScopes = Object.values(SCOPES).map(
      (s) => new ResourceServerScope({ scopeName: s.name, scopeDescription: s.description }),
    );
    this.resourceServer = this.userPool.addResourceServer('ResourceServer', {
      identifier: RESOURCE_SERVER_ID,
      userPoolResourceServerName: 'descent API',
      scopes: serverScopes,
    });
    // Referencing the resource server makes each client depend on it, so its scopes exist first.
    const scopes = serverScopes.map((s) => OAuthScope.resourceServer(this.resourceServer, s));

    this.domain = this.userPool.addDomain('Domain', {
      cognitoDomain: { domainPrefix: props.domainPrefix ?? `descent-${Stack.of(this).account}` },
    });
    this.tokenUrl = `${this.domain.baseUrl()}/oauth2/token`;

    this.clients = (props.tenants ?? ['default']).map((tenant) =>
      this.userPool.addClient(
        `Client-${tenant}`,
        withDefaults(appClientDefaults(scopes), {
          userPoolClientName: tenant,
          accessTokenValidity: props.accessTokenValidity,
        }),
      ),
    );
  }
}

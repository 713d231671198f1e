// node-oidc-provider as the peer of bench/run.sh (scenarios peer-client-credentials,
// peer-introspect, peer-jwks): one Node.js process on loopback, its default in-memory
// adapter, one generated RSA-2048 key, and one confidential client for the client
// credentials grant.
//
//   PEER_CLIENT_SECRET=... node server.mjs     # PORT (default 0: any free port)
//
// Two resource servers (RFC 8707, features.resourceIndicators):
//   urn:tessera:bench:jwt     the default: RS256 JWT access tokens (RFC 9068), like Tessera's
//   urn:tessera:bench:opaque  opaque access tokens, stored in the adapter
// oidc-provider refuses to introspect structured (JWT) tokens ("Structured JWT Tokens cannot
// be introspected"), so its introspection is measured on tokens of the opaque resource.
//
// Prints one line when it listens: "oidc-provider ready issuer=http://127.0.0.1:PORT".
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const JWT_RESOURCE = 'urn:tessera:bench:jwt';
const OPAQUE_RESOURCE = 'urn:tessera:bench:opaque';
const CLIENT_ID = process.env.PEER_CLIENT_ID ?? 'bench-svc';
const CLIENT_SECRET = process.env.PEER_CLIENT_SECRET;
if (!CLIENT_SECRET) {
  console.error('PEER_CLIENT_SECRET is required');
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'bench-rs256' };

const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const resourceServers = {
  [JWT_RESOURCE]: {
    scope: 'read',
    audience: JWT_RESOURCE,
    accessTokenTTL: 900,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  },
  [OPAQUE_RESOURCE]: {
    scope: 'read',
    audience: OPAQUE_RESOURCE,
    accessTokenTTL: 900,
    accessTokenFormat: 'opaque',
  },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'read',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['read'],
  ttl: { ClientCredentials: 900 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // A client may introspect the tokens issued to it.
      allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId,
    },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => JWT_RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        const info = resourceServers[resource];
        if (!info) throw new errors.InvalidTarget();
        return info;
      },
    },
  },
});

server.on('request', provider.callback());
console.log(`oidc-provider ready issuer=${issuer} node=${process.version}`);

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

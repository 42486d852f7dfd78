// node-oidc-provider, the in-memory peer of bench/http.
//
//   node server.mjs PORT MINT_PORT
//
// PORT serves the provider (POST /token, POST /token/introspection, GET /me). MINT_PORT (loopback, a
// separate listener so the provider's own routes are untouched) mints the benchmark's inputs inside this
// process, through the provider's models: POST /mint?codes=N&refresh=N&warm=N answers
// {client_id, client_secret, redirect_uri, access_token, codes, codes_warm, refresh, refresh_warm}.
//
// Storage is in memory. The bundled MemoryAdapter is an LRU of 1,000 entries, which would evict the
// pre-minted codes, so this file carries a plain Map adapter: same place (the process heap), no bound.
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, mintPort] = process.argv.slice(2).map(Number);
const CLIENT_ID = 'bench-client';
const CLIENT_SECRET = 'bench-secret-' + 'x'.repeat(40);
const REDIRECT_URI = 'https://bench.example/callback';
const ACCOUNT = 'bench-account';

const store = new Map();
const grants = new Map();
class MapAdapter {
  constructor(name) { this.name = name; }
  key(id) { return `${this.name}:${id}`; }
  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    store.set(this.key(id), { payload, expiresAt });
    if (payload.grantId) {
      const members = grants.get(payload.grantId) || [];
      members.push(this.key(id));
      grants.set(payload.grantId, members);
    }
  }
  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt < Date.now()) { store.delete(this.key(id)); return undefined; }
    return entry.payload;
  }
  async findByUserCode() { return undefined; }
  async findByUid() { return undefined; }
  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { store.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    for (const key of grants.get(grantId) || []) store.delete(key);
    grants.delete(grantId);
  }
}

const provider = new Provider(`http://127.0.0.1:${port}`, {
  adapter: MapAdapter,
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  features: { introspection: { enabled: true }, devInteractions: { enabled: false } },
  pkce: { required: () => false },
  issueRefreshToken: async () => true,
  rotateRefreshToken: () => true,
  ttl: { AccessToken: 3600, AuthorizationCode: 1800, RefreshToken: 86400, Grant: 86400 },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

async function newGrant(scope) {
  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: CLIENT_ID });
  grant.addOIDCScope(scope);
  return grant.save();
}

// W1/W2 use "offline_access" without "openid": an OAuth 2.0 exchange (no ID token to sign), like Apertur's.
const TOKEN_SCOPE = 'offline_access';

async function mintCodes(n) {
  const out = [];
  for (let i = 0; i < n; i += 1) {
    const grantId = await newGrant(TOKEN_SCOPE);
    const code = new provider.AuthorizationCode({
      accountId: ACCOUNT, clientId: CLIENT_ID, grantId, scope: TOKEN_SCOPE, redirectUri: REDIRECT_URI,
    });
    out.push(await code.save());
  }
  return out;
}

async function mintRefresh(n) {
  const client = await provider.Client.find(CLIENT_ID);
  const out = [];
  for (let i = 0; i < n; i += 1) {
    const grantId = await newGrant(TOKEN_SCOPE);
    const rt = new provider.RefreshToken({
      accountId: ACCOUNT, client, grantId, scope: TOKEN_SCOPE, gty: 'authorization_code', rotations: 0,
    });
    out.push(await rt.save());
  }
  return out;
}

async function mintAccess() {
  const client = await provider.Client.find(CLIENT_ID);
  const grantId = await newGrant('openid');  // userinfo (W3) needs openid
  const at = new provider.AccessToken({ accountId: ACCOUNT, client, grantId, scope: 'openid', gty: 'authorization_code' });
  return at.save();
}

http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    const n = (name) => Number(url.searchParams.get(name) || 0);
    const warm = n('warm');
    const body = {
      client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uri: REDIRECT_URI,
      access_token: await mintAccess(),
      codes: await mintCodes(n('codes')), codes_warm: n('codes') ? await mintCodes(warm) : [],
      refresh: await mintRefresh(n('refresh')), refresh_warm: n('refresh') ? await mintRefresh(warm) : [],
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  } catch (err) {
    res.writeHead(500); res.end(String(err && err.stack));
  }
}).listen(mintPort, '127.0.0.1');

provider.listen(port, '127.0.0.1');
console.log(`oidc-provider on http://127.0.0.1:${port} (mint on ${mintPort})`);

// The TypeScript MCP SDK's own OAuth client against a real todo-mcp server: discovery from the
// 401, dynamic registration, the login form filled in over HTTP (as a person's browser would),
// code exchange, tool calls, a refresh after the access token expires, and revocation.
// Input: one JSON argument (tests/oauth/test_typescript_client.py). Output: one JSON line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const input = JSON.parse(process.argv[2]);
const seen = { logins: 0, tokens: [] };

class Provider {
  constructor() {
    this.savedClient = undefined;
    this.savedTokens = undefined;
    this.verifier = undefined;
    this.pendingUrl = undefined;
  }
  get redirectUrl() { return input.redirectUri; }
  get clientMetadata() {
    return {
      client_name: "TypeScript SDK test client",
      redirect_uris: [input.redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: input.authMethod,
    };
  }
  clientInformation() { return this.savedClient; }
  saveClientInformation(info) { this.savedClient = info; }
  tokens() { return this.savedTokens; }
  saveTokens(tokens) { this.savedTokens = tokens; seen.tokens.push(tokens); }
  redirectToAuthorization(url) { this.pendingUrl = url; }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
}

// A person at the login page: open it, fill in the form, and read the code off the redirect.
async function logIn(authorizationUrl) {
  seen.logins += 1;
  const first = await fetch(authorizationUrl, { redirect: "manual" });
  if (first.status !== 302) throw new Error(`authorize answered ${first.status}: ${await first.text()}`);
  const loginUrl = new URL(first.headers.get("location"), authorizationUrl);
  const page = await fetch(loginUrl, { redirect: "manual" });
  const html = await page.text();
  const cookie = (page.headers.get("set-cookie") || "").split(";")[0];
  const form = new URLSearchParams();
  for (const match of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) {
    form.set(match[1], match[2].replaceAll("&amp;", "&").replaceAll("&quot;", '"').replaceAll("&#x27;", "'"));
  }
  form.set("email", input.email);
  form.set("password", input.password);
  form.set("action", "allow");
  const action = new URL(html.match(/<form method="post" action="([^"]+)"/)[1], loginUrl);
  const answer = await fetch(action, {
    method: "POST",
    body: form,
    headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
    redirect: "manual",
  });
  if (answer.status !== 303) throw new Error(`the login form answered ${answer.status}: ${await answer.text()}`);
  const back = new URL(answer.headers.get("location"));
  seen.iss = back.searchParams.get("iss");
  return back.searchParams.get("code");
}

async function connected(provider) {
  const client = new Client({ name: "todo-mcp-ts-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(input.mcpUrl), { authProvider: provider });
  try {
    await client.connect(transport);
    return client;
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
  }
  const code = await logIn(provider.pendingUrl);
  await transport.finishAuth(code);
  const again = new Client({ name: "todo-mcp-ts-test", version: "1.0.0" });
  await again.connect(new StreamableHTTPClientTransport(new URL(input.mcpUrl), { authProvider: provider }));
  return again;
}

const provider = new Provider();
let client = await connected(provider);
seen.tools = (await client.listTools()).tools.map((tool) => tool.name).sort();
const added = await client.callTool({ name: "add_task", arguments: { user_id: input.userId, title: "From TypeScript" } });
seen.added = added.structuredContent;
await client.close();

// Past the access token's lifetime: the SDK refreshes by itself on the 401.
await new Promise((resolve) => setTimeout(resolve, input.waitMs));
client = await connected(provider);
const listed = await client.callTool({ name: "list_tasks", arguments: { user_id: input.userId } });
seen.listed = listed.structuredContent;
await client.close();
seen.clientId = provider.savedClient.client_id;
seen.clientSecret = provider.savedClient.client_secret ?? null;
console.log(JSON.stringify(seen));

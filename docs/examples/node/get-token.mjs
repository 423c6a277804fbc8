// Prints a token for a profile, masked: node get-token.mjs <profile> [scope ...]
// with env TOKEN_BROKER_FUNCTION (the broker's alias ARN, output TokenBrokerAliasArn), or TOKEN_BROKER_URL and
// TOKEN_BROKER_AUDIENCE (its HTTP route and the stack output TokenBrokerAudience).
import { TokenBrokerError, TokenClient } from "./token-client.mjs";

const [profile = "okta-default", ...scopes] = process.argv.slice(2);
try {
  const tokens = new TokenClient();
  const token = await tokens.token(profile, { scopes: scopes.length ? scopes : undefined });
  const again = await tokens.token(profile, { scopes: scopes.length ? scopes : undefined }); // from memory
  console.log(
    JSON.stringify({
      access_token: `${token.value.slice(0, 4)}…`,
      expires_in: Math.floor((token.expiresAt - Date.now()) / 1000),
      scope: token.scope,
      from_memory: again === token,
    }),
  );
} catch (error) {
  if (!(error instanceof TokenBrokerError)) throw error;
  console.error(`get-token: ${error.message}`);
  process.exitCode = 1;
}

// A third-party OpenID provider for the tests: npm's oauth2-mock-server, its issuer URL ending in a slash
// (as Auth0's does). Prints {"issuer": ...} once listening; tokens from POST /token (grant_type=password,
// username=<sub>) carry the audience given here. Tests ask for a token with another audience, or with the
// issuer's URL less its slash, in the headers x-test-audience and x-test-issuer: without-slash.
//   node provider.mjs <oauth2-mock-server package dir> <audience>
import { pathToFileURL } from "node:url";

const [packageDir, audience] = process.argv.slice(2);
const { OAuth2Server } = await import(pathToFileURL(`${packageDir}/dist/index.mjs`).href);

const server = new OAuth2Server(undefined, undefined, { shouldIssuerUrlBeSuffixedWithATralingSlash: true });
await server.issuer.keys.generate("RS256");
server.service.on("beforeTokenSigning", (token, req) => {
  token.payload.aud = req.headers["x-test-audience"] ?? audience;
  if (req.headers["x-test-issuer"] === "without-slash") {
    token.payload.iss = server.issuer.url.replace(/\/$/, "");
  }
});
await server.start(0, "127.0.0.1");
console.log(JSON.stringify({ issuer: server.issuer.url }));
process.on("SIGTERM", async () => {
  await server.stop();
  process.exit(0);
});

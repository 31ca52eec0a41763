// Bundles node-llama-cpp's JavaScript (and the packages it imports) into one file,
// dist/vendor/node-llama-cpp.js, which src/engine/nodeLlamaCpp.ts loads instead of the package when the
// installed node-llama-cpp is the version bundled (dist/vendor/node-llama-cpp.json says which).
//
// Why: importing node-llama-cpp loads ~400 ES modules (its own 230, ipull's 60, lifecycle-utils' 37, ...);
// Node's module loader spends ~0.4 s on them on this machine before any model work, on every `run`,
// `eval`, `bench` and `serve` start. The same code as one file loads in ~0.15 s.
//
// The bundle runs node-llama-cpp's own code unchanged except for where it finds itself: every
// `import.meta.url` in its files becomes the URL that file has in the installed package (so its
// binaries, llama.cpp sources and child-process scripts are found where they are), and its imports of
// the prebuilt-binary packages (@node-llama-cpp/*) are resolved from the installed package too.
// Runs at install (`prepare`) and in `npm run build`; without esbuild (a registry install) it does
// nothing and lmrun imports the package as usual.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const require = createRequire(import.meta.url);
const outputDir = path.join(root, "dist", "vendor");
const output = path.join(outputDir, "node-llama-cpp.js");
const meta = path.join(outputDir, "node-llama-cpp.json");

let esbuild;
try {
  esbuild = await import("esbuild");
} catch {
  console.error("note: esbuild is not installed; lmrun will import node-llama-cpp unbundled (~0.25 s slower start)");
  process.exit(0);
}

const packageRoot = path.dirname(path.dirname(require.resolve("node-llama-cpp")));
const { version } = JSON.parse(readFileSync(path.join(packageRoot, "package.json"), "utf8"));
const ownFiles = path.join(packageRoot, "dist") + path.sep;

const locateItself = {
  name: "node-llama-cpp-locates-itself",
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, (args) => {
      if (!args.path.startsWith(ownFiles)) return undefined;
      const relative = path.relative(packageRoot, args.path).split(path.sep).join("/");
      const source = readFileSync(args.path, "utf8")
        .replaceAll("import.meta.url", `__lmrunNlcUrl(${JSON.stringify(relative)})`)
        .replace(/\bimport\(("@node-llama-cpp\/[^"]+")\)/g, "__lmrunNlcImport($1)");
      return { contents: source, loader: "js", resolveDir: path.dirname(args.path) };
    });
  },
};

// The bundle's own helpers: node-llama-cpp is found from the bundle's place at run time, never from
// where it was built.
const banner = `// node-llama-cpp ${version}, bundled by lmrun's scripts/bundle-node-llama-cpp.mjs. Not edited by hand.
import { createRequire as __lmrunCreateRequire } from "node:module";
import { pathToFileURL as __lmrunPathToFileURL } from "node:url";
import __lmrunPath from "node:path";
const require = __lmrunCreateRequire(import.meta.url);
const __lmrunNlcIndex = require.resolve("node-llama-cpp");
const __lmrunNlcRoot = __lmrunPath.dirname(__lmrunPath.dirname(__lmrunNlcIndex));
const __lmrunNlcRequire = __lmrunCreateRequire(__lmrunNlcIndex);
function __lmrunNlcUrl(relative) { return __lmrunPathToFileURL(__lmrunPath.join(__lmrunNlcRoot, relative)).href; }
async function __lmrunNlcImport(specifier) { return import(__lmrunPathToFileURL(__lmrunNlcRequire.resolve(specifier)).href); }`;

mkdirSync(outputDir, { recursive: true });
const temporary = `${output}.${process.pid}.tmp`;
try {
  await esbuild.build({
    stdin: {
      // lifecycle-utils is node-llama-cpp's copy: its lock map is module state the serve scheduler reads.
      contents: 'export * from "./dist/index.js";\nexport { isLockActive, waitForLockRelease } from "lifecycle-utils";\n',
      resolveDir: packageRoot,
      sourcefile: "node-llama-cpp-entry.js",
    },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile: temporary,
    external: ["electron", "@reflink/*", "*.node"],
    banner: { js: banner },
    plugins: [locateItself],
    logLevel: "error",
    legalComments: "none",
  });
  renameSync(temporary, output);
  writeFileSync(meta, JSON.stringify({ nodeLlamaCppVersion: version }) + "\n");
} catch (error) {
  rmSync(temporary, { force: true });
  rmSync(output, { force: true });
  rmSync(meta, { force: true });
  console.error(`note: could not bundle node-llama-cpp (${error instanceof Error ? error.message.split("\n")[0] : error}); lmrun will import it unbundled`);
}

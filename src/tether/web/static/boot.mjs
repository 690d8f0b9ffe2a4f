// Boot script of a Tether page: load Pyodide from this server's /pyodide/ folder (never a CDN),
// install the `tether` package and the page's own packages (serve_web's packages=), served
// together as /tether/tether.zip, then connect back to /ws.
// The runtime and the zip are found next to this script (../pyodide/, ./tether.zip), so a
// server that serves the page under a prefix (tether.asgi.app mounted at /app) serves them too.
//
// Query parameters: ?boot=0 loads nothing (call window.tetherBoot() yourself);
// ?connect=0 boots Python but does not connect (run your own code with window.pyodide).
// window.tetherReady is a promise of {version, jspi, bootMs}; it rejects with the boot error.
// A page may name the Python coroutine function that connects, instead of the default
// tether.browser.page:main, with <meta name="tether-main" content="module:function">.
import { loadPyodide } from "../pyodide/pyodide.mjs";

const params = new URLSearchParams(location.search);
const PYODIDE_URL = new URL("../pyodide/", import.meta.url).href;
const ZIP_URL = new URL("tether.zip", import.meta.url).href;
const MAIN = document.querySelector('meta[name="tether-main"]')?.content || "tether.browser.page:main";

function status(text) {
  const el = document.getElementById("tether-status");
  if (el) el.textContent = text;
}

export async function boot({ connect = params.get("connect") !== "0" } = {}) {
  const t0 = performance.now();
  status("Loading Python…");
  const pyodide = await loadPyodide({ indexURL: PYODIDE_URL });
  const resp = await fetch(ZIP_URL);
  if (!resp.ok) throw new Error(`fetching ${ZIP_URL} failed: HTTP ${resp.status}`);
  const site = pyodide.runPython("import site; site.getsitepackages()[0]");
  pyodide.unpackArchive(await resp.arrayBuffer(), "zip", { extractDir: site });
  pyodide.runPython("import importlib; importlib.invalidate_caches(); import tether");
  window.pyodide = pyodide;
  const info = {
    version: pyodide.version,
    jspi: typeof WebAssembly.Suspending === "function",
    bootMs: Math.round(performance.now() - t0),
  };
  if (connect) {
    status("Connecting…");
    const [module, func = "main"] = MAIN.split(":");
    if (!/^[\w.]+$/.test(module) || !/^\w+$/.test(func)) throw new Error(`bad tether-main: ${MAIN}`);
    await pyodide.runPythonAsync(`import ${module}\nawait ${module}.${func}()`);
    status("Connected");
  } else {
    status("Python ready");
  }
  return info;
}

window.tetherBoot = boot;
if (params.get("boot") !== "0") {
  window.tetherReady = boot();
  window.tetherReady.catch((err) => {
    status("Boot failed: " + err);
    console.error(err);
  });
}
window.tetherLoaded = true;

#!/usr/bin/env node
import { runFromProcess } from "../dist/entry.js";

await runFromProcess();

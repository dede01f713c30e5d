// A small upstream that runs its one tool as a task, on the official TypeScript SDK's task machinery
// (the same as server-everything's): node task_server.mjs MODULES_DIR, served over stdio.
// The tool `brief {size, ttl, hold, delay, lag}` makes a task with the ttl asked (ms; none: kept forever),
// tells its status "working" before the CreateTaskResult, and unless `hold` finishes it at once with a
// text of `size` characters (its "completed" status told before the CreateTaskResult too); with
// `delay` (ms) its CreateTaskResult is sent that long after the task was made (its ttl running); with
// `lag` (ms) each later tasks/get of the task reads the task store that long after it came. With
// `ask` the task asks its client to pick a colour (elicitation/create for the task, which the SDK
// delivers on the client's tasks/result) and answers with what was picked.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules] = process.argv.slice(2);
const load = (path) => import(pathToFileURL(join(modules, path)).href);
const sdk = (path) => load(join("@modelcontextprotocol", "sdk", "dist", "esm", path));
const { z } = await load(join("zod", "index.js"));
const { McpServer } = await sdk("server/mcp.js");
const { StdioServerTransport } = await sdk("server/stdio.js");
const { InMemoryTaskStore, InMemoryTaskMessageQueue } = await sdk("experimental/tasks/index.js");
const { ElicitResultSchema } = await sdk("types.js");
const PICK = { type: "object", properties: { colour: { type: "string" } }, required: ["colour"] };

async function pick(taskId, extra) {
  const asked = { method: "elicitation/create", params: { message: "Which colour?", requestedSchema: PICK } };
  const answer = await extra.sendRequest(asked, ElicitResultSchema, { relatedTask: { taskId } });
  const text = `picked ${answer.content?.colour ?? answer.action}`;
  await extra.taskStore.storeTaskResult(taskId, "completed", { content: [{ type: "text", text }] });
}

class LaggingStore extends InMemoryTaskStore {
  lags = new Map();

  async getTask(taskId, sessionId) {
    const lag = this.lags.get(taskId);
    if (lag) await new Promise((resolve) => setTimeout(resolve, lag));
    return await super.getTask(taskId, sessionId);
  }
}

const taskStore = new LaggingStore();
const server = new McpServer(
  { name: "task-server", version: "1.0.0" },
  {
    capabilities: { tools: {}, tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } },
    taskStore,
    taskMessageQueue: new InMemoryTaskMessageQueue(),
  },
);
server.experimental.tasks.registerToolTask(
  "brief",
  {
    description: "Runs as a task and answers with `size` characters.",
    inputSchema: z.object({
      size: z.number().default(10),
      ttl: z.number().optional(),
      hold: z.boolean().default(false),
      ask: z.boolean().default(false),
      delay: z.number().default(0),
      lag: z.number().default(0),
    }),
    execution: { taskSupport: "required" },
  },
  {
    createTask: async (args, extra) => {
      const task = await extra.taskStore.createTask({ ttl: args.ttl ?? null, pollInterval: 100 });
      await extra.taskStore.updateTaskStatus(task.taskId, "working", "started");
      if (args.ask) {
        pick(task.taskId, extra).catch((error) => extra.taskStore.updateTaskStatus(task.taskId, "failed", String(error)));
      } else if (!args.hold) {
        const text = "x".repeat(args.size);
        await extra.taskStore.storeTaskResult(task.taskId, "completed", { content: [{ type: "text", text }] });
      }
      await new Promise((resolve) => setTimeout(resolve, args.delay));
      taskStore.lags.set(task.taskId, args.lag);
      return { task };
    },
    getTask: async (args, extra) => await extra.taskStore.getTask(extra.taskId),
    getTaskResult: async (args, extra) => await extra.taskStore.getTaskResult(extra.taskId),
  },
);
await server.connect(new StdioServerTransport());

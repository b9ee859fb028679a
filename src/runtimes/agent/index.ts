export {
  AgentClient,
  AgentProcess,
  LINUX_SIGNALS,
  signalName,
  signalNumber,
  type ConnectOptions,
  type FileEvent,
  type ProcessEvent,
  type ProcessExit,
  type ProcessInfo,
  type SpawnOptions,
} from './client.js';
export * as agentProtocol from './protocol.js';
export { FrameDecoder, FrameType, ProtocolError, type Frame } from './protocol.js';

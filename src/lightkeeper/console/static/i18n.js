// The console's words in the two languages the API speaks; the choice also sets X-TC-Language.
const STRINGS = {
  "en-US": {
    title: "Lightkeeper console", language: "Language", signIn: "Sign in", signOut: "Sign out",
    secretId: "SecretId", secretKey: "SecretKey",
    signInHelp: "Your key signs one request for temporary credentials (1 hour). Only those " +
      "are kept, in this tab's session storage; the SecretKey is not stored.",
    signedInAs: "Signed in with", region: "Region", instances: "Instances",
    name: "Name", id: "ID", state: "State", ip: "Public IP", bundle: "Bundle",
    disk: "System disk", actions: "Actions", start: "Start", stop: "Stop", reboot: "Reboot",
    noInstances: "No instances in this region.", back: "All instances",
    snapshots: "Snapshots", quota: "Snapshot quota", quotaText: "{used} of {total} used in {region}",
    snapshotName: "Snapshot name (optional)", create: "Create snapshot",
    progress: "Progress", operation: "Latest operation", created: "Created",
    rollBack: "Roll back", rename: "Rename", save: "Save", cancel: "Cancel",
    deleteSelected: "Delete selected", select: "Select {id}", noSnapshots: "No snapshots yet.",
    newName: "New name of {id}", progressOf: "Progress of {id}",
    rollbackTitle: "Roll back {instance}?",
    rollbackText: "The system disk returns to snapshot {snapshot}; what was written since is lost.",
    rollbackRunning: "{instance} is RUNNING: it will be forcibly shut down (as if its power " +
      "were cut) and left STOPPED.",
    deleteTitle: "Delete {count} snapshot(s)?", deleteText: "This cannot be undone: {ids}.",
    confirm: "Confirm", updating: "Updating while an operation runs…", error: "Error",
  },
  "zh-CN": {
    title: "Lightkeeper 控制台", language: "语言", signIn: "登录", signOut: "退出登录",
    secretId: "SecretId", secretKey: "SecretKey",
    signInHelp: "您的密钥只用于签名一次请求，换取 1 小时的临时凭证；页面只在本标签页的会话存储中保存临时凭证，不保存 SecretKey。",
    signedInAs: "当前密钥", region: "地域", instances: "实例",
    name: "名称", id: "ID", state: "状态", ip: "公网 IP", bundle: "套餐",
    disk: "系统盘", actions: "操作", start: "开机", stop: "关机", reboot: "重启",
    noInstances: "该地域没有实例。", back: "全部实例",
    snapshots: "快照", quota: "快照配额", quotaText: "{region}：已用 {used} / 共 {total}",
    snapshotName: "快照名称（可选）", create: "创建快照",
    progress: "进度", operation: "最近操作", created: "创建时间",
    rollBack: "回滚", rename: "重命名", save: "保存", cancel: "取消",
    deleteSelected: "删除所选", select: "选择 {id}", noSnapshots: "暂无快照。",
    newName: "{id} 的新名称", progressOf: "{id} 的进度",
    rollbackTitle: "回滚 {instance}？",
    rollbackText: "系统盘将恢复到快照 {snapshot}，之后写入的数据将丢失。",
    rollbackRunning: "{instance} 正在运行：回滚将强制关机（相当于断电），完成后保持关机状态。",
    deleteTitle: "删除 {count} 个快照？", deleteText: "删除后无法恢复：{ids}。",
    confirm: "确定", updating: "操作进行中，页面自动刷新…", error: "错误",
  },
};

export function t(language, key, values = {}) {
  const text = (STRINGS[language] || STRINGS["en-US"])[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

export const LANGUAGES = [["en-US", "English"], ["zh-CN", "中文"]];

// The words of the installed app's messages (web/install.js), in English and Simplified Chinese.
export default {
  en: {
    'install.update': 'A new version is ready.',
    'install.reload': 'Reload',
    'install.model': 'model: {name} ({id})',
  },
  'zh-CN': {
    'install.update': '新版本已准备好。',
    'install.reload': '重新加载',
    'install.model': '模型：{name}（{id}）',
  },
};

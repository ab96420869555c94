// The main view's words (web/app.js, web/index.html, web/teach.js), in English and Simplified Chinese.
export default {
  en: {},
  'zh-CN': {},
};

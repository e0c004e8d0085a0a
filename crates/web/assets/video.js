// Personal video on the lead page, one flow: record in the browser (camera + microphone,
// live preview, re-record) or pick a file, then send it by text or by email. The lead gets a
// link to a simple page that plays it; their viewing alerts the agent.
(function () {
  'use strict';
  var h = RL.h;
  window.RLVideo = function (lead, reload) {
    var live = h('video', { id: 'video-live', autoplay: true, muted: true, playsinline: true, hidden: true });
    var review = h('video', { id: 'video-review', controls: true, playsinline: true, hidden: true });
    var status = h('p', { role: 'status', class: 'muted', id: 'video-status' });
    var stream = null, recorder = null, chunks = [], blob = null, timer = null, started = 0;
    var btnCamera = h('button', { type: 'button', id: 'video-camera', text: 'Start camera' });
    var btnRecord = h('button', { type: 'button', id: 'video-record', class: 'primary', text: 'Record', hidden: true });
    var btnStop = h('button', { type: 'button', id: 'video-stop', text: 'Stop', hidden: true });
    var btnRedo = h('button', { type: 'button', id: 'video-redo', text: 'Re-record', hidden: true });
    var file = h('input', { type: 'file', id: 'video-file', accept: 'video/*' });
    var sendText = h('button', { type: 'button', id: 'video-send-text', class: 'primary', text: 'Send by text', disabled: true });
    var sendEmail = h('button', { type: 'button', id: 'video-send-email', text: 'Send by email', disabled: true });
    if (!lead.phone || lead.sms_opt_out || lead.phone_bad) sendText.hidden = true;
    if (!lead.email || lead.email_opt_out || lead.email_bad) sendEmail.hidden = true;

    function ready(b) {
      blob = b;
      review.src = URL.createObjectURL(b);
      review.hidden = false;
      sendText.disabled = sendEmail.disabled = false;
      status.textContent = 'Watch it back, then send it — or re-record.';
    }
    btnCamera.addEventListener('click', function () {
      if (!navigator.mediaDevices || !window.MediaRecorder) { status.textContent = 'This browser cannot record; choose a video file instead.'; return; }
      navigator.mediaDevices.getUserMedia({ video: true, audio: true }).then(function (s) {
        stream = s; live.srcObject = s; live.hidden = false;
        btnCamera.hidden = true; btnRecord.hidden = false;
        status.textContent = 'Camera on. Press Record when you are ready.';
      }).catch(function (e) { status.textContent = 'No camera: ' + e.message + '. You can choose a video file instead.'; });
    });
    btnRecord.addEventListener('click', function () {
      chunks = [];
      var type = ['video/webm;codecs=vp8,opus', 'video/webm', 'video/mp4'].filter(function (t) { return MediaRecorder.isTypeSupported(t); })[0];
      recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
      recorder.ondataavailable = function (e) { if (e.data && e.data.size) chunks.push(e.data); };
      recorder.onstop = function () {
        clearInterval(timer);
        ready(new Blob(chunks, { type: (recorder.mimeType || 'video/webm').split(';')[0] }));
        btnStop.hidden = true; btnRedo.hidden = false; btnRecord.hidden = true;
      };
      recorder.start(250);
      started = Date.now();
      btnRecord.hidden = true; btnStop.hidden = false; review.hidden = true;
      timer = setInterval(function () { status.textContent = 'Recording… ' + Math.round((Date.now() - started) / 1000) + ' s'; }, 500);
    });
    btnStop.addEventListener('click', function () { if (recorder && recorder.state !== 'inactive') recorder.stop(); });
    btnRedo.addEventListener('click', function () {
      blob = null; review.hidden = true; sendText.disabled = sendEmail.disabled = true;
      btnRedo.hidden = true; btnRecord.hidden = false;
      status.textContent = 'Ready to record again.';
    });
    file.addEventListener('change', function () { if (file.files[0]) ready(file.files[0]); });
    function send(channel) {
      if (!blob) return;
      sendText.disabled = sendEmail.disabled = true;
      status.textContent = 'Uploading…';
      RL.api('POST', '/api/v1/leads/' + lead.id + '/videos', blob, { raw: true, type: blob.type || 'video/webm' })
        .then(function (v) {
          status.textContent = 'Sending…';
          return RL.api('POST', '/api/v1/leads/' + lead.id + '/videos/' + v.id + '/send', { channel: channel });
        })
        .then(function (r) {
          status.textContent = 'Sent by ' + channel + '. Their link: ' + r.url + '. You will be alerted the moment they watch it.';
          if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
          if (reload) setTimeout(reload, 1500);
        })
        .catch(function (e) { status.textContent = 'Not sent: ' + e.message; sendText.disabled = sendEmail.disabled = false; });
    }
    sendText.addEventListener('click', function () { send('text'); });
    sendEmail.addEventListener('click', function () { send('email'); });
    return h('section', { class: 'card', 'aria-labelledby': 'video-h', id: 'video' },
      h('h2', { id: 'video-h', text: 'Personal video' }),
      live, review,
      h('div', { class: 'row' }, btnCamera, btnRecord, btnStop, btnRedo),
      h('label', { for: 'video-file', text: 'Or choose a video file' }), file,
      h('div', { class: 'row', style: null }, sendText, sendEmail), status);
  };
})();

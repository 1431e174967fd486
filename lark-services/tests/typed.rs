//! Typed APIs end to end against lark-testkit (pagination, upload, download, per-call options),
//! tolerant replies, and serialization round trips of complex request bodies.

use futures_util::{StreamExt, TryStreamExt};
use lark_services::contact::v3::{GetUserRequest, ListUserRequest, ListUserResponse};
use lark_services::content::{Card, Image, MessageContent, Post, PostElement, Text};
use lark_services::im::v1::{
    CreateFileRequest, CreateImageRequest, CreateMessageRequest, FileType, GetFileRequest, ImageType,
    ReceiveIdType, SearchMessageResponse,
};
use lark_services::{next_page, Client, LarkError, NextPage, TypedRequest, UploadFile};
use lark_testkit::{FakePlatform, Fault};
use serde_json::{json, Value};

fn client(p: &FakePlatform) -> Client {
    Client::builder(p.app_id(), p.app_secret()).base_url(p.base_url()).build().unwrap()
}

fn list_requests(p: &FakePlatform) -> Vec<String> {
    p.requests()
        .into_iter()
        .filter(|r| r.path == "/open-apis/contact/v3/users")
        .map(|r| r.query.unwrap_or_default())
        .collect()
}

/// Serializes `value` and checks it is `expected`, then reads `expected` back and checks that
/// it serializes the same again.
fn round_trip<T>(value: &T, expected: Value)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    assert_eq!(serde_json::to_value(value).unwrap(), expected);
    let back: T = serde_json::from_value(expected.clone()).unwrap();
    assert_eq!(&back, value);
    assert_eq!(serde_json::to_value(&back).unwrap(), expected);
}

#[tokio::test]
async fn items_stream_over_three_pages_ends_on_has_more_false() {
    let p = FakePlatform::start().await; // 25 seeded users
    let c = client(&p);
    let users: Vec<_> = c
        .contact()
        .v3()
        .user()
        .list(ListUserRequest::new().page_size(10))
        .items()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<&str> = users.iter().map(|u| u.open_id.as_deref().unwrap()).collect();
    let expected: Vec<String> = (1..=25).map(|n| format!("ou_{n}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(users[0].status.as_ref().and_then(|s| s.is_activated), Some(true));
    let sent = list_requests(&p);
    assert_eq!(sent.len(), 3, "three pages, no fourth request: {sent:?}");
    // Each next request carries the previous reply's page token.
    assert_eq!(sent, ["page_size=10", "page_token=pt_10&page_size=10", "page_token=pt_20&page_size=10"]);
}

#[tokio::test]
async fn pages_stream_yields_replies_and_a_limit_stops_fetching() {
    let p = FakePlatform::start().await;
    let c = client(&p);
    let pages: Vec<ListUserResponse> = c
        .contact()
        .v3()
        .user()
        .list(ListUserRequest::new().page_size(10))
        .pages()
        .try_collect()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|pg| pg.items.as_ref().map_or(0, Vec::len)).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(pages.iter().map(|pg| pg.has_more).collect::<Vec<_>>(), [Some(true), Some(true), Some(false)]);

    p.clear_requests();
    let first12: Vec<_> = c
        .contact()
        .v3()
        .user()
        .list(ListUserRequest::new().page_size(10))
        .items()
        .limit(12)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(first12.len(), 12);
    assert_eq!(list_requests(&p).len(), 2, "the third page is never fetched");

    p.clear_requests();
    let one: Vec<_> =
        c.contact().v3().user().list(ListUserRequest::new().page_size(10)).pages().limit(1).collect().await;
    assert_eq!(one.len(), 1);
    assert_eq!(list_requests(&p).len(), 1);
}

#[tokio::test]
async fn a_failing_page_is_passed_through_and_ends_the_stream() {
    let p = FakePlatform::start().await;
    let c = client(&p);
    let mut items = c.contact().v3().user().list(ListUserRequest::new().page_size(10)).items();
    for _ in 0..10 {
        items.next().await.unwrap().unwrap();
    }
    p.inject(Fault::api_error(99991400, "limited").on_path_prefix("/open-apis/contact").times(10));
    // The eleventh item needs page two, which fails (after the client's rate-limit retries).
    let err = items.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(99991400));
    assert!(items.next().await.is_none(), "no item after the error");
}

#[test]
fn page_token_rules() {
    assert_eq!(next_page(Some(false), Some("t")), NextPage::Last);
    assert_eq!(next_page(Some(true), Some("t")), NextPage::Token("t".into()));
    // `has_more` without a usable token is not a quiet end: the rest of the list is unreachable.
    assert_eq!(next_page(Some(true), Some("")), NextPage::MissingToken);
    assert_eq!(next_page(Some(true), None), NextPage::MissingToken);
    // Without `has_more`, the token alone decides.
    assert_eq!(next_page(None, Some("t")), NextPage::Token("t".into()));
    assert_eq!(next_page(None, Some("")), NextPage::Last);
    assert_eq!(next_page(None, None), NextPage::Last);
}

/// A list endpoint that answers each request with the next of `pages` (the reply's `data`) and
/// records the query of each; the listing call sends its own user token, so nothing else is hit.
async fn scripted_list(pages: Vec<Value>) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = queries.clone();
    tokio::spawn(async move {
        let mut pages = pages.into_iter();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
            let target = line.split(' ').nth(1).unwrap_or_default();
            seen.lock().unwrap().push(target.split_once('?').map_or("", |(_, q)| q).to_owned());
            let data = pages.next().unwrap_or_else(|| json!({"has_more": false}));
            let body = json!({"code": 0, "msg": "ok", "data": data}).to_string();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    let client = Client::builder("cli_test", "secret").base_url(base).build().unwrap();
    (client, queries)
}

fn user_page(id: &str, has_more: bool, token: Option<&str>) -> Value {
    let mut page = json!({"has_more": has_more, "items": [{"open_id": id}]});
    if let Some(t) = token {
        page["page_token"] = json!(t);
    }
    page
}

#[tokio::test]
async fn has_more_without_a_next_token_ends_the_stream_with_an_error() {
    let pages = vec![user_page("ou_1", true, Some("A")), user_page("ou_2", true, Some(""))];
    let (c, queries) = scripted_list(pages).await;
    let call = c.contact().v3().user().list(ListUserRequest::new().page_size(1)).user_access_token("u-1");
    let got: Vec<Result<ListUserResponse, LarkError>> = call.pages().collect().await;
    assert_eq!(got.len(), 3, "two pages, then the error: {got:?}");
    assert!(got[0].is_ok() && got[1].is_ok());
    let err = got[2].as_ref().unwrap_err();
    assert!(matches!(err, LarkError::Decode(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("contact.v3.user.list") && msg.contains("page 2"), "{msg}");
    assert!(msg.contains("`has_more: true` but gives no next page token"), "{msg}");
    assert_eq!(*queries.lock().unwrap(), ["page_size=1", "page_token=A&page_size=1"]);

    // The item stream ends the same way, after the items it could fetch.
    let pages = vec![user_page("ou_1", true, None)];
    let (c, _) = scripted_list(pages).await;
    let call = c.contact().v3().user().list(ListUserRequest::new()).user_access_token("u-1");
    let got: Vec<_> = call.items().collect().await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].as_ref().unwrap().open_id.as_deref(), Some("ou_1"));
    assert!(matches!(got[1], Err(LarkError::Decode(_))));

    // A limit reached first means no error: the caller asked for no more.
    let pages = vec![user_page("ou_1", true, None)];
    let (c, _) = scripted_list(pages).await;
    let call = c.contact().v3().user().list(ListUserRequest::new()).user_access_token("u-1");
    let got: Vec<_> = call.pages().limit(1).collect().await;
    assert_eq!(got.len(), 1);
    assert!(got[0].is_ok());
}

#[tokio::test]
async fn a_token_seen_before_ends_the_stream_with_an_error_not_a_loop() {
    // A → B → A: comparing with the previous token alone would loop forever.
    let pages = vec![
        user_page("ou_1", true, Some("A")),
        user_page("ou_2", true, Some("B")),
        user_page("ou_3", true, Some("A")),
        user_page("ou_4", false, None),
    ];
    let (c, queries) = scripted_list(pages).await;
    let call = c.contact().v3().user().list(ListUserRequest::new()).user_access_token("u-1");
    let got: Vec<_> = call.items().collect().await;
    let ids: Vec<Option<&str>> =
        got.iter().map(|r| r.as_ref().ok().and_then(|u| u.open_id.as_deref())).collect();
    assert_eq!(ids, [Some("ou_1"), Some("ou_2"), Some("ou_3"), None]);
    let msg = got[3].as_ref().unwrap_err().to_string();
    assert!(msg.contains("page 3 repeats the page token \"A\" of an earlier page"), "{msg}");
    assert_eq!(*queries.lock().unwrap(), ["", "page_token=A", "page_token=B"], "no fourth request");

    // The same token twice in a row too.
    let pages = vec![user_page("ou_1", true, Some("A")), user_page("ou_2", true, Some("A"))];
    let (c, queries) = scripted_list(pages).await;
    let call = c.contact().v3().user().list(ListUserRequest::new()).user_access_token("u-1");
    let got: Vec<_> = call.pages().collect().await;
    assert_eq!(got.len(), 3);
    assert!(matches!(got[2], Err(LarkError::Decode(_))));
    assert_eq!(queries.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn upload_from_bytes_path_and_reader_then_download() {
    let p = FakePlatform::start().await;
    let c = client(&p);
    let png = vec![0x89, b'P', b'N', b'G', 1, 2, 3];
    let image = c
        .im()
        .v1()
        .image()
        .create(
            CreateImageRequest::new()
                .image_type(ImageType::Message)
                .image(UploadFile::bytes("logo.png", png.clone()).content_type("image/png")),
        )
        .await
        .unwrap();
    let image_key = image.image_key.unwrap();
    assert!(image_key.starts_with("img_v3_"), "{image_key}");

    let dir = std::env::temp_dir().join(format!("lark-typed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("报告.pdf");
    std::fs::write(&path, b"%PDF-1.4 typed").unwrap();
    let from_path = c
        .im()
        .v1()
        .file()
        .create(
            CreateFileRequest::new()
                .file_type(FileType::Pdf)
                .file_name("报告.pdf")
                .file(UploadFile::path(&path)),
        )
        .await
        .unwrap();
    let from_reader = c
        .im()
        .v1()
        .file()
        .create(
            CreateFileRequest::new()
                .file_type("stream")
                .file_name("data.bin")
                .file(UploadFile::reader("data.bin", std::io::Cursor::new(vec![9u8; 70_000]))),
        )
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    let uploads = p.uploads();
    assert_eq!(uploads.len(), 3);
    assert_eq!(uploads[0].fields, [("image_type".to_owned(), "message".to_owned())]);
    assert_eq!(uploads[0].files[0].field, "image");
    assert_eq!(uploads[0].files[0].content_type.as_deref(), Some("image/png"));
    assert_eq!(&uploads[0].files[0].data[..], &png[..]);
    assert_eq!(uploads[1].files[0].file_name.as_deref(), Some("报告.pdf"));
    assert_eq!(&uploads[1].files[0].data[..], b"%PDF-1.4 typed");
    assert_eq!(uploads[2].files[0].data.len(), 70_000);

    let dl = c.im().v1().file().get(GetFileRequest::new(from_path.file_key.unwrap())).await.unwrap();
    assert_eq!(dl.file_name(), Some("报告.pdf"));
    let chunks: Vec<_> = dl.into_stream().try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"%PDF-1.4 typed");

    let big = c.im().v1().file().get(GetFileRequest::new("size_200000")).await.unwrap();
    assert_eq!(big.file_name(), Some("size_200000.bin"));
    let mut n = 0usize;
    let mut stream = std::pin::pin!(big.into_stream());
    while let Some(chunk) = stream.try_next().await.unwrap() {
        assert!(chunk.iter().enumerate().all(|(i, b)| *b == ((n + i) % 251) as u8));
        n += chunk.len();
    }
    assert_eq!(n, 200_000);
    assert!(from_reader.file_key.is_some());
}

#[tokio::test]
async fn send_a_message_with_content_builders_and_per_call_options() {
    let p = FakePlatform::start().await;
    let c = client(&p);
    let text = Text::new("hi ").at("ou_2", "Two");
    let sent = c
        .im()
        .v1()
        .message()
        .create(
            CreateMessageRequest::new()
                .receive_id_type(ReceiveIdType::OpenId)
                .receive_id("ou_1")
                .message(&text),
        )
        .request_id("req-1")
        .await
        .unwrap();
    assert!(sent.message_id.as_deref().unwrap().starts_with("om_"));
    assert_eq!(sent.body.and_then(|b| b.content).as_deref(), Some(text.to_content().as_str()));
    let recorded = p.sent_messages();
    assert_eq!(recorded[0]["msg_type"], "text");
    assert_eq!(recorded[0]["content"], r#"{"text":"hi <at user_id=\"ou_2\">Two</at>"}"#);
    let req = p.requests().into_iter().find(|r| r.path == "/open-apis/im/v1/messages").unwrap();
    assert_eq!(req.query.as_deref(), Some("receive_id_type=open_id"));
    assert_eq!(req.headers["x-request-id"], "req-1");

    // A user token given on the call is sent as is (contact.v3.user.get takes user tokens).
    let user =
        c.contact().v3().user().get(GetUserRequest::new("ou_3")).user_access_token("u-typed").await.unwrap();
    assert_eq!(user.user.and_then(|u| u.name).as_deref(), Some("User 3"));
    let req = p.requests().into_iter().find(|r| r.path == "/open-apis/contact/v3/users/ou_3").unwrap();
    assert_eq!(req.headers["authorization"], "Bearer u-typed");

    // API errors stay errors.
    let err = c.contact().v3().user().get(GetUserRequest::new("ou_404")).await.unwrap_err();
    assert!(matches!(&err, LarkError::Api(api) if api.code == 41050), "{err:?}");
}

#[test]
fn content_builders_write_the_platform_json() {
    let post = Post::new().zh_cn(
        "标题",
        [
            vec![
                PostElement::text("bold").bold(),
                PostElement::link("docs", "https://x.test"),
                PostElement::at("ou_1"),
            ],
            vec![PostElement::image("img_1"), PostElement::code_block("rust", "fn main() {}")],
        ],
    );
    assert_eq!(post.msg_type(), "post");
    let v: Value = serde_json::from_str(&post.to_content()).unwrap();
    assert_eq!(
        v,
        json!({"zh_cn": {"title": "标题", "content": [
            [{"tag": "text", "text": "bold", "style": ["bold"]}, {"tag": "a", "text": "docs", "href": "https://x.test"},
             {"tag": "at", "user_id": "ou_1"}],
            [{"tag": "img", "image_key": "img_1"}, {"tag": "code_block", "language": "rust", "text": "fn main() {}"}]
        ]}})
    );
    assert_eq!(Image::new("img_1").to_content(), r#"{"image_key":"img_1"}"#);
    let card = Card::template("AAq1").version("1.0.2").variables(json!({"name": "x"}));
    assert_eq!(card.msg_type(), "interactive");
    assert_eq!(
        serde_json::from_str::<Value>(&card.to_content()).unwrap(),
        json!({"type": "template", "data": {"template_id": "AAq1", "template_version_name": "1.0.2", "template_variable": {"name": "x"}}})
    );
    assert_eq!(Text::new("a").at("o\"u<1>", "N<a>me").as_str(), "a<at user_id=\"ou1\">Name</at>");
}

#[test]
fn replies_tolerate_missing_unknown_and_odd_fields() {
    // Unknown fields are skipped, absent and null ones are None, int64 comes as a string or a
    // number, an unknown enum value is kept.
    let page: ListUserResponse = serde_json::from_value(json!({
        "has_more": false,
        "brand_new_field": {"x": [1, 2]},
        "items": [
            {"open_id": "ou_1", "name": null, "gender": 1, "join_time": 1700000000, "status": {"is_frozen": true}},
            {"open_id": "ou_2", "mystery": true}
        ]
    }))
    .unwrap();
    let items = page.items.unwrap();
    assert_eq!(items[0].name, None);
    assert_eq!(items[0].status.as_ref().unwrap().is_frozen, Some(true));
    assert_eq!(items[1].open_id.as_deref(), Some("ou_2"));
    assert_eq!(page.page_token, None);

    let t: ReceiveIdType = serde_json::from_value(json!("thread_id")).unwrap();
    assert_eq!(t, ReceiveIdType::Unknown("thread_id".into()));
    assert_eq!(serde_json::to_value(&t).unwrap(), "thread_id");

    // Numbers of unknown kind (`total` has no format in the spec) are f64s: a fraction does not
    // fail the reply, a string holding a number is read, and a whole value goes out as an integer.
    let found: SearchMessageResponse = serde_json::from_value(
        json!({"total": "12", "items": [{"id": "om_1", "meta_data": {"position": 3.5}}]}),
    )
    .unwrap();
    assert_eq!(found.total, Some(12.0));
    assert_eq!(found.items.as_ref().unwrap()[0].meta_data.as_ref().unwrap().position, Some(3.5));
    assert_eq!(serde_json::to_value(&found).unwrap()["total"], json!(12));
    assert!(serde_json::from_value::<SearchMessageResponse>(json!({"total": "many"})).is_err());

    // int64 fields read strings and numbers, and are written as strings (the platform's form).
    use lark_services::bitable::v1::BatchCreateAppTableRecordResponseRecord as BitableRecord;
    let record: BitableRecord = serde_json::from_value(
        json!({"created_time": "9007199254740993", "last_modified_time": 1700000000000i64}),
    )
    .unwrap();
    assert_eq!(record.created_time, Some(9_007_199_254_740_993));
    assert_eq!(record.last_modified_time, Some(1_700_000_000_000));
    assert_eq!(
        serde_json::to_value(&record).unwrap(),
        json!({"created_time": "9007199254740993", "last_modified_time": "1700000000000"})
    );
    assert!(serde_json::from_value::<BitableRecord>(json!({"created_time": 1.5})).is_err());

    let meta = <CreateMessageRequest as TypedRequest>::META;
    assert_eq!(
        (meta.id, meta.method.as_str(), meta.path),
        ("im.v1.message.create", "POST", "/open-apis/im/v1/messages")
    );
    assert_eq!(meta.doc_url, "https://open.feishu.cn/document/server-docs/im-v1/message/create");
}

#[test]
fn secrets_are_redacted_in_debug_but_sent_in_full() {
    use lark_services::calendar::v4::{CreateCalendarEventRequest, MeetingSettings, Vchat};
    let request = CreateCalendarEventRequest::new("cal_1")
        .vchat(Vchat::default().meeting_settings(MeetingSettings::default().password("hunter2-meeting")));
    assert!(!format!("{request:?}").contains("hunter2"), "{request:?}");
    let body = serde_json::to_value(&request.body).unwrap();
    assert_eq!(body["vchat"]["meeting_settings"]["password"], "hunter2-meeting");
    let reply: lark_services::calendar::v4::CreateCalendarEventResponse = serde_json::from_value(
        json!({"event": {"vchat": {"meeting_settings": {"password": "pw-from-reply"}}}}),
    )
    .unwrap();
    assert!(!format!("{reply:?}").contains("pw-from-reply"));
}

#[tokio::test]
async fn an_upload_without_its_file_fails_before_sending() {
    let p = FakePlatform::start().await;
    let c = client(&p);
    let err = c
        .im()
        .v1()
        .image()
        .create(CreateImageRequest::new().image_type(ImageType::Message))
        .await
        .unwrap_err();
    assert!(matches!(&err, LarkError::Config(_)), "{err:?}");
    assert!(err
        .to_string()
        .contains("`im.v1.image.create` uploads a file, but the request has no file part set"));
    assert!(p.uploads().is_empty());
}

#[test]
fn calendar_event_create_body_round_trips() {
    use lark_services::calendar::v4::{
        Attachment, CreateCalendarEventBody, CreateCalendarEventRequest, EndTime, Location, Reminder,
        StartTime, Vchat, Visibility,
    };
    let request = CreateCalendarEventRequest::new("feishu.cn_xxx@group.calendar.feishu.cn")
        .summary("Weekly sync")
        .need_notification(false)
        .start_time(StartTime::default().timestamp("1602504000").timezone("Asia/Shanghai"))
        .end_time(EndTime::default().timestamp("1602507600").timezone("Asia/Shanghai"))
        .vchat(Vchat::default().vc_type("third_party").meeting_url("https://example.com/meet"))
        .visibility(Visibility::Public)
        .location(Location::default().name("Room 1").latitude(1.25).longitude(-2.5))
        .color(-1)
        .reminders([Reminder::default().minutes(5)])
        .recurrence("FREQ=DAILY;INTERVAL=1")
        .attachments([Attachment::default().file_token("boxcnxxx")]);
    let expected = json!({
        "summary": "Weekly sync",
        "need_notification": false,
        "start_time": {"timestamp": "1602504000", "timezone": "Asia/Shanghai"},
        "end_time": {"timestamp": "1602507600", "timezone": "Asia/Shanghai"},
        "vchat": {"vc_type": "third_party", "meeting_url": "https://example.com/meet"},
        "visibility": "public",
        "location": {"name": "Room 1", "latitude": 1.25, "longitude": -2.5},
        "color": -1,
        "reminders": [{"minutes": 5}],
        "recurrence": "FREQ=DAILY;INTERVAL=1",
        "attachments": [{"file_token": "boxcnxxx"}]
    });
    round_trip::<CreateCalendarEventBody>(&request.body, expected);
    assert_eq!(request.calendar_id, "feishu.cn_xxx@group.calendar.feishu.cn");
}

#[test]
fn bitable_record_create_body_round_trips() {
    use lark_services::bitable::v1::{CreateAppTableRecordBody, CreateAppTableRecordRequest};
    let fields: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "Text": "hello",
        "Number": 12.5,
        "Single select": "Option A",
        "Multi select": ["A", "B"],
        "Date": 1674206443000i64,
        "Checkbox": true,
        "People": [{"id": "ou_2cdf4fd7ad1d4d1e8a1c5e3e7c7c7c7c"}],
        "Link": {"text": "Feishu", "link": "https://www.feishu.cn"},
        "Attachment": [{"file_token": "Vl3FbVkvnowlgpxpqsAbBrtFcrd"}]
    }))
    .unwrap();
    let request = CreateAppTableRecordRequest::new("appbcbWCzen6D8dezhoCH2RpMAh", "tblsRc9GRRXKqhvW")
        .user_id_type("open_id")
        .fields(fields.clone().into_iter().collect::<std::collections::BTreeMap<_, _>>());
    round_trip::<CreateAppTableRecordBody>(&request.body, json!({ "fields": fields }));
}

#[test]
fn approval_instance_create_body_round_trips() {
    use lark_services::approval::v4::{CreateInstanceBody, CreateInstanceRequest, NodeApproverOpenId};
    let form =
        json!([{"id": "111", "type": "input", "value": "test"}, {"id": "222", "type": "number", "value": 3}]);
    let request = CreateInstanceRequest::new()
        .approval_code("7C468A54-8745-2245-9675-08B7C63E7A85")
        .open_id("ou_3cda9c969f737aaa05e6915dce306cb9")
        .form(form.to_string())
        .node_approver_open_id_list([NodeApproverOpenId::default()
            .key("46e6d4b9-9f3e-4a5e-b6d5-0b3a6a4b9e2c")
            .value(["ou_0a1b2c3d4e5f"])])
        .uuid("7e6a8b6c-2f4b-4d1b-9c0a-6f2e1d3c4b5a")
        .allow_resubmit(true)
        .title_display_method(0);
    let expected = json!({
        "approval_code": "7C468A54-8745-2245-9675-08B7C63E7A85",
        "open_id": "ou_3cda9c969f737aaa05e6915dce306cb9",
        "form": form.to_string(),
        "node_approver_open_id_list": [{"key": "46e6d4b9-9f3e-4a5e-b6d5-0b3a6a4b9e2c", "value": ["ou_0a1b2c3d4e5f"]}],
        "uuid": "7e6a8b6c-2f4b-4d1b-9c0a-6f2e1d3c4b5a",
        "allow_resubmit": true,
        "title_display_method": 0
    });
    round_trip::<CreateInstanceBody>(&request.body, expected);
}

//! Japanese words for the human report, in the terms Japanese ISPs and console makers
//! use (NATタイプ, ポート開放, 二重NAT, 固定IPオプション …).

use tsunagi::diag::{
    Behaviour, ClassicName, OpenModerateStrict, PortAllocation, PortMappingService, Report,
};

use super::render::{Field, Section, Text, reason, secs};
use super::verdict::{Advice, Headline, Hosting, Ipv6Direct, PeerKind, SDK_KEEPALIVE_S};

/// Japanese.
#[derive(Debug, Clone, Copy)]
pub struct Japanese;

impl Text for Japanese {
    fn title(&self, r: &Report) -> String {
        let address = r
            .server_address
            .filter(|a| a.to_string() != r.server)
            .map(|a| format!("（{a}）"))
            .unwrap_or_default();
        let quick = if r.quick { "、簡易チェック" } else { "" };
        format!(
            "Tsunagi NATチェック: サーバー {}{address}、所要 {} 秒{quick}",
            r.server,
            secs(r.duration_ms as f64 / 1000.0)
        )
    }

    fn section(&self, s: Section) -> &'static str {
        match s {
            Section::Verdict => "【判定】",
            Section::Details => "【詳細】",
            Section::Consoles => {
                "ゲーム機風の表示（各ゲーム機の判定を近似したもので、実機の表示と異なる場合があります）:"
            }
            Section::Advice => "【できること】",
            Section::Notes => "【チェックからの注意（英語）】",
        }
    }

    fn field(&self, f: Field) -> &'static str {
        match f {
            Field::Mapping => "マッピング (RFC 4787)",
            Field::Filtering => "フィルタリング (RFC 4787)",
            Field::Classic => "従来のNATタイプ",
            Field::Xbox => "Xbox 風",
            Field::PlayStation => "PlayStation 風",
            Field::Switch => "Switch 風",
            Field::Addresses => "アドレス",
            Field::Timer => "セッションタイマー",
            Field::Ports => "ポート",
            Field::MapE => "MAP-E ポートセット",
            Field::Layers => "NATの段数",
            Field::Cgn => "CGN",
            Field::Hairpin => "ヘアピンNAT",
            Field::Ipv6 => "IPv6",
            Field::Nat64 => "NAT64",
            Field::Upnp => "UPnP-IGD",
            Field::NatPmp => "NAT-PMP",
            Field::Pcp => "PCP",
        }
    }

    fn headline(&self, h: Headline) -> &'static str {
        match h {
            Headline::Unreachable => {
                "STUNサーバーからUDPの応答がなかったため、何も測定できませんでした。"
            }
            Headline::Ipv6Only => {
                "IPv6 は使えますが、IPv4 ではサーバーから応答がありませんでした。IPv6 のプレイヤーとは直接つながり、IPv4 のみのプレイヤーとは中継サーバー（または NAT64）経由になります。"
            }
            Headline::Unknown => {
                "NATの種類を特定しきれませんでした。以下の一部の結果は「不明」です。"
            }
            Headline::Open => {
                "オープン: 他のプレイヤーがこのマシンに直接つながります。P2Pゲームは問題なく動作します。"
            }
            Headline::AllPeers => {
                "良好: ホールパンチングにより、どの種類のNATのプレイヤーとも直接つながります。"
            }
            Headline::MostPeers => {
                "おおむね良好: ほとんどのプレイヤーと直接つながります。シンメトリックNATのプレイヤーとは中継サーバー経由になります。"
            }
            Headline::FewPeers => {
                "制限あり（シンメトリックNAT）: 直接つながるのはフルコーンNATとアドレス制限コーンNATのプレイヤーだけで、それ以外は中継サーバー経由になります。"
            }
        }
    }

    fn hosting_label(&self) -> &'static str {
        "ホスト（部屋を立てる）"
    }

    fn hosting(&self, h: Hosting) -> &'static str {
        match h {
            Hosting::Yes => "できます: ホールパンチングなしでも他のプレイヤーが直接接続できます",
            Hosting::WithHolePunching => {
                "できます（ホールパンチングを行うゲームの場合。Tsunagi は対応）。それ以外のゲームではポート開放が必要です"
            }
            Hosting::Partly => {
                "できます。ただしシンメトリックNATのプレイヤーは中継サーバー経由になります"
            }
            Hosting::Poorly => {
                "ほかのプレイヤーにホストを任せるのがおすすめです（多くのプレイヤーが中継サーバー経由になります）"
            }
            Hosting::Unknown => "不明",
        }
    }

    fn direct_label(&self) -> &'static str {
        "次のNATのプレイヤーとのP2P直接接続:"
    }

    fn peer(&self, k: PeerKind) -> &'static str {
        match k {
            PeerKind::FullCone => "フルコーンNAT",
            PeerKind::AddressRestricted => "アドレス制限コーンNAT",
            PeerKind::PortRestricted => "ポート制限コーンNAT",
            PeerKind::Symmetric => "シンメトリックNAT",
        }
    }

    fn direct(&self, d: Option<bool>) -> &'static str {
        match d {
            Some(true) => "直接接続できる",
            Some(false) => "できない: 中継サーバー経由",
            None => "不明",
        }
    }

    fn ipv6_peer(&self) -> &'static str {
        "IPv6 のプレイヤー"
    }

    fn ipv6_direct(&self, d: Ipv6Direct) -> &'static str {
        match d {
            Ipv6Direct::Yes => "IPv6 で直接接続（NATを通らない）",
            Ipv6Direct::No => "この回線は IPv6 なし: IPv6 のみのプレイヤーとは中継サーバー経由",
            Ipv6Direct::Unknown => "不明（IPv6 は未測定）",
        }
    }

    fn relayed(&self, kinds: &[PeerKind], ipv6: Ipv6Direct) -> String {
        let mut who = Vec::new();
        if !kinds.is_empty() {
            let nats: Vec<&str> = kinds.iter().map(|&k| self.peer(k)).collect();
            who.push(format!("{} のプレイヤー", nats.join("・")));
        }
        if ipv6 == Ipv6Direct::No {
            who.push("IPv6 のみの回線のプレイヤー".to_owned());
        }
        if who.is_empty() {
            "中継サーバー経由になる相手: 分かっている範囲ではなし（予備として待機します）。"
                .to_owned()
        } else {
            format!(
                "中継サーバー経由（接続はできますが遅延が少し増えます）: {}。",
                who.join("、")
            )
        }
    }

    fn behaviour(&self, b: Behaviour, filtering: bool) -> String {
        let abbrev = format!("{}{}", b.abbrev(), if filtering { "F" } else { "M" });
        let gloss = match (b, filtering) {
            (Behaviour::EndpointIndependent, false) => "どの宛先にも同じ外部アドレス・ポートを使う",
            (Behaviour::AddressDependent, false) => "宛先IPごとに別の外部アドレス・ポートを使う",
            (Behaviour::AddressAndPortDependent, false) => {
                "宛先IPとポートの組ごとに別の外部アドレス・ポートを使う"
            }
            (Behaviour::EndpointIndependent, true) => "誰でも外部アドレス・ポート宛てに送信できる",
            (Behaviour::AddressDependent, true) => {
                "こちらから送信したIPからのみ受信できる（ポートは問わない）"
            }
            (Behaviour::AddressAndPortDependent, true) => {
                "こちらから送信したIPとポートからのみ受信できる"
            }
        };
        let name = match b {
            Behaviour::EndpointIndependent => "エンドポイント非依存",
            Behaviour::AddressDependent => "アドレス依存",
            Behaviour::AddressAndPortDependent => "アドレス・ポート依存",
        };
        format!("{name} ({abbrev}): {gloss}")
    }

    fn classic(&self, c: ClassicName) -> &'static str {
        match c {
            ClassicName::OpenInternet => "インターネット直結（NATなし、ファイアウォールなし）",
            ClassicName::SymmetricUdpFirewall => {
                "NATなし（着信をフィルタリングするファイアウォールあり）"
            }
            ClassicName::FullCone => "フルコーンNAT",
            ClassicName::AddressRestrictedCone => "アドレス制限コーンNAT",
            ClassicName::PortRestrictedCone => "ポート制限コーンNAT",
            ClassicName::Symmetric => "シンメトリックNAT",
            ClassicName::Blocked => "UDP遮断（応答なし）",
            ClassicName::Unknown => "不明",
        }
    }

    fn xbox(&self, l: OpenModerateStrict) -> &'static str {
        match l {
            OpenModerateStrict::Open => "オープン (Open)",
            OpenModerateStrict::Moderate => "中程度 (Moderate)",
            OpenModerateStrict::Strict => "厳密 (Strict)",
        }
    }

    fn playstation(&self, t: u8) -> String {
        format!("NATタイプ {t}")
    }

    fn switch(&self, c: char) -> String {
        format!("NATタイプ {c}")
    }

    fn value(&self, f: Field, r: &Report, cancelled: bool) -> Option<String> {
        match f {
            Field::Addresses => {
                let local = r.local_address?;
                let mapped = r.mapped_address?;
                Some(if local == mapped {
                    format!("{local}（サーバーからも同じに見える: NATなし）")
                } else {
                    format!("ローカル {local}、サーバーからは {mapped} に見える")
                })
            }
            Field::Timer => timer(r, cancelled),
            Field::Ports => {
                let alloc = r.port_allocation.map(|a| match a {
                    PortAllocation::Preserving => "ポート維持（外部ポート＝ローカルポート）",
                    PortAllocation::Sequential => "連番（予測可能）",
                    PortAllocation::Random => "ランダム",
                });
                let range = r.port_range.as_ref().map(|p| {
                    format!(
                        "観測範囲 {}〜{}（{} 個）",
                        p.min,
                        p.max,
                        p.observed.len()
                    )
                });
                match (alloc, range) {
                    (None, None) => None,
                    (a, r) => Some(format!(
                        "割り当て方式: {}、{}",
                        a.unwrap_or("不明（サンプル不足）"),
                        r.unwrap_or_else(|| "範囲は観測できず".to_owned())
                    )),
                }
            }
            Field::MapE => match &r.mape_hint {
                Some(h) => Some(format!(
                    "推定: 使えるポートは {} 個、{} 個ずつのブロックに分散\
                     （PSID {}、PSID長 {}、オフセット {}）。使用中のブロック {}〜{}。\
                     数個のポートからの推定で、確実ではありません",
                    h.port_count,
                    h.block_size,
                    h.psid,
                    h.psid_len,
                    h.psid_offset,
                    h.block.0,
                    h.block.1
                )),
                None => r
                    .port_range
                    .as_ref()
                    .map(|_| "ポートセットのパターンは見られません".to_owned()),
            },
            Field::Layers => match (r.nat_layers, r.nat_layers_at_least) {
                (Some(0), _) => {
                    Some("なし: このマシンにグローバルアドレスが付いています".to_owned())
                }
                (Some(1), _) => Some("1 段".to_owned()),
                (Some(n), _) => Some(format!("{n} 段（二重NAT: NATが直列に複数）")),
                (None, Some(n)) => Some(format!("{n} 段以上")),
                (None, None) => None,
            },
            Field::Cgn => r.cgn.map(|c| {
                if c {
                    "あり: プロバイダーの NAT が 1 つのグローバル IPv4 アドレスを複数の契約者で共有しています"
                } else {
                    "なし"
                }
                .to_owned()
            }),
            Field::Hairpin if r.behind_nat() == Some(false) => {
                Some("該当なし（NATなし）".to_owned())
            }
            Field::Hairpin => r.hairpinning.map(|h| {
                if h {
                    "対応: 同じ家庭内ネットワークのプレイヤーもグローバルアドレス宛てでつながります"
                } else {
                    "非対応: 同じ家庭内ネットワークのプレイヤーとはローカルアドレスで接続する必要があります"
                }
                .to_owned()
            }),
            Field::Ipv6 => {
                let reachable = r.ipv6.reachable?;
                if !reachable {
                    return Some("サーバーへの IPv6 接続なし".to_owned());
                }
                let address = r
                    .ipv6
                    .address
                    .map(|a| format!("（{a}）"))
                    .unwrap_or_default();
                let firewall = match r.ipv6.filtering {
                    Some(Behaviour::EndpointIndependent) => "着信のフィルタリングなし".to_owned(),
                    Some(b) => format!(
                        "ファイアウォールが外部からの着信をフィルタリング（{}F）",
                        b.abbrev()
                    ),
                    None => match reason(r, f) {
                        Some(why) => format!("ファイアウォールのフィルタリングは不明（{why}）"),
                        None => "ファイアウォールのフィルタリングは不明".to_owned(),
                    },
                };
                Some(format!("接続可能{address}、{firewall}"))
            }
            Field::Nat64 => match &r.nat64_prefix {
                Some(p) => Some(format!(
                    "プレフィックス {p}（IPv6 シングルスタックのネットワークで IPv4 へ変換）"
                )),
                None if reason(r, f).is_some() => None,
                None => Some("なし".to_owned()),
            },
            _ => None,
        }
    }

    fn service(&self, s: &PortMappingService) -> String {
        match (s.present, s.external_address) {
            (Some(true), Some(a)) => format!("あり（外部アドレス {a}）"),
            (Some(true), None) => "あり".to_owned(),
            (Some(false), _) => "応答なし（無効または非搭載）".to_owned(),
            (None, _) => "未調査".to_owned(),
        }
    }

    fn advice(&self, a: &Advice) -> String {
        match a {
            Advice::CheckUdp => "サーバーのアドレスと、UDP の送信が許可されているか（ファイアウォール、会社や学校のネットワーク）を確認し、もう一度チェックしてください。".to_owned(),
            Advice::UseIpv6 => "IPv6 が使えます。IPv6 に対応したゲームは、IPv6 のプレイヤーと NAT を介さずに直接つながります。Tsunagi は IPv6 を優先して試します。".to_owned(),
            Advice::EnableIpv6 => "IPv6 が使えません。プロバイダーが IPv6（IPoE）を提供していれば、ルーターで有効にすると IPv6 対応ゲームで直接つながるようになります。".to_owned(),
            Advice::SymmetricMapE { ports } => format!(
                "ルーターが 1 つの IPv4 アドレスを他の契約者と共有しており（MAP-E 方式と思われるポートセット、{ports} ポート）、NAT がシンメトリックです。プロバイダーに固定IPオプションを問い合わせるか、中継サーバーを使ってください（Tsunagi は自動で切り替えます）。"
            ),
            Advice::Symmetric => "NAT がシンメトリックです。ルーターに「フルコーン」（エンドポイント非依存）NAT の設定やファームウェア更新がないか確認するか、プロバイダーにお問い合わせください。それ以外の場合は中継サーバー経由で接続します。".to_owned(),
            Advice::Cgn => "プロバイダーのキャリアグレードNAT（CGN）の内側にいます。ご自宅のルーターのポート開放や UPnP では開けられません。プロバイダーにグローバル IPv4 アドレス（固定IPオプション）を問い合わせるか、IPv6 をお使いください。".to_owned(),
            Advice::DsLite => "IPv4 は DS-Lite のトンネルでプロバイダーの AFTR に送られ、AFTR が NAT を行ってアドレスを共有しています。ポート開放や UPnP では開けられません。IPv6 はネイティブなので、IPv6 対応ゲームは直接つながります。".to_owned(),
            Advice::DoubleNat { layers } => format!(
                "NAT が {layers} 段になっています（二重NAT）。どちらかのルーターをブリッジモード（アクセスポイントモード）にして、NAT を 1 段にしてください。"
            ),
            Advice::PortMappingPresent { inner: false } => "ルーターの自動ポート開放（UPnP / NAT-PMP / PCP）が有効です。ゲームはこれを利用できます。Tsunagi は使えるときは使いますが、必須ではありません。".to_owned(),
            Advice::PortMappingPresent { inner: true } => "ルーターは UPnP / NAT-PMP / PCP に対応していますが、その外部アドレスはグローバルアドレスではありません。開けたポートはさらに外側の NAT で止まるため、着信には役立ちません。".to_owned(),
            Advice::PortMappingAbsent => "UPnP / NAT-PMP / PCP の応答がありません（無効または非搭載）。ルーターで UPnP を有効にすると他のゲームでは改善する場合があります。Tsunagi には不要です。".to_owned(),
            Advice::Keepalive { timer_s, at_least, keepalive_s } => {
                let sdk = if *keepalive_s >= SDK_KEEPALIVE_S {
                    format!("Tsunagi は {SDK_KEEPALIVE_S} 秒ごとにキープアライブを送るので十分間に合います。")
                } else {
                    format!("Tsunagi の既定値 {SDK_KEEPALIVE_S} 秒では間に合いません。keep_alive を {keepalive_s} 秒に設定してください。")
                };
                if *at_least {
                    format!(
                        "NAT は無通信の UDP セッションを少なくとも {} 秒（試した最長の無通信時間）保持します。キープアライブは {keepalive_s} 秒ごとで十分です。{sdk}",
                        secs(*timer_s)
                    )
                } else {
                    format!(
                        "NAT は無通信の UDP セッションを約 {} 秒で削除します。ゲームは少なくとも {keepalive_s} 秒ごとに何か送信しないと切断されます。{sdk}",
                        secs(*timer_s)
                    )
                }
            }
            Advice::FewPorts { ports } => format!(
                "使えるポートは約 {ports} 個だけです。多数の接続を開くアプリがあるとポートが枯渇し、新しい接続が黙って失敗することがあります。Tsunagi はすべての相手に 1 つのポートを使います。"
            ),
            Advice::Nat64 => "IPv6 シングルスタック（NAT64）のネットワークです。IPv4 専用のゲームは NAT64 経由で IPv4 のサーバーにつながり、IPv4 だけのプレイヤーとは中継サーバー経由になります。".to_owned(),
            Advice::RunAgain => "一部の結果が不明です。サーバーが RFC 5780 に対応していない（2 つ目の IP アドレスが必要）か、パケットが失われた可能性があります。別のサーバーで試すか、もう一度チェックしてください。".to_owned(),
            Advice::NothingToDo => "特にありません。このネットワークは直接接続を制限していません。".to_owned(),
        }
    }

    fn unknown(&self, reason: Option<&str>) -> String {
        match reason {
            Some(r) => format!("不明（{r}）"),
            None => "不明（チェックで確定できませんでした）".to_owned(),
        }
    }
}

fn timer(r: &Report, cancelled: bool) -> Option<String> {
    let b = r.binding_lifetime.as_ref();
    if cancelled {
        return Some(match b {
            Some(b) if b.lower_s > 0.0 => {
                format!("中断: {} 秒の無通信後も有効、上限は未確定", secs(b.lower_s))
            }
            _ => "結果が出る前に中断".to_owned(),
        });
    }
    if r.quick && b.is_none() {
        return Some("未測定（簡易チェック。--quick なしで実行すると測定します）".to_owned());
    }
    if b.is_none()
        && r.behind_nat() == Some(false)
        && r.filtering == Some(Behaviour::EndpointIndependent)
    {
        return Some(
            "該当なし（NAT もファイアウォールもないため、時間切れになるものがありません）"
                .to_owned(),
        );
    }
    let b = b?;
    Some(match b.upper_s {
        Some(upper) => format!(
            "約 {} 秒（{} 秒の無通信後は有効、{} 秒後には消失。試行 {} 回）",
            secs(r.binding_lifetime_s.unwrap_or((b.lower_s + upper) / 2.0)),
            secs(b.lower_s),
            secs(upper),
            b.trials
        ),
        None => format!(
            "{} 秒以上（試した最長の無通信時間の後も有効。試行 {} 回）",
            secs(b.lower_s),
            b.trials
        ),
    })
}

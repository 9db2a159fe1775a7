#include "TsunagiSubsystem.h"

#include "TsunagiModule.h"

namespace
{
	std::string ToUtf8(const FString& S) { return std::string(TCHAR_TO_UTF8(*S)); }
	FString FromUtf8(std::string_view S) { return FString(UTF8_TO_TCHAR(std::string(S).c_str())); }
	bool Fail(const tsunagi::Status& Status, FString& OutError)
	{
		OutError = FromUtf8(Status.message());
		UE_LOG(LogTsunagi, Warning, TEXT("%s: %s"), UTF8_TO_TCHAR(Status.name()), *OutError);
		return false;
	}
}

void UTsunagiSubsystem::Deinitialize()
{
	StopEndpoint();
	Super::Deinitialize();
}

bool UTsunagiSubsystem::StartEndpoint(bool bIPv4Only, bool bLoopbackOnly, int32 BindPort, FString& OutError)
{
	tsunagi::Config Config;
	tsunagi::Status Status = Config.SetIpv4Only(bIPv4Only);
	if (Status) Status = Config.SetLoopbackOnly(bLoopbackOnly);
	if (Status) Status = Config.SetBindPort(static_cast<uint16_t>(FMath::Clamp(BindPort, 0, 65535)));
	if (Status && !RelayServer.IsEmpty()) Status = Config.SetRelayServer(ToUtf8(RelayServer));
	if (Status && !RelayToken.IsEmpty()) Status = Config.SetRelayToken(ToUtf8(RelayToken));
	if (Status && !RendezvousServer.IsEmpty()) Status = Config.SetRendezvousServer(ToUtf8(RendezvousServer));
	if (!Status) return Fail(Status, OutError);
	auto Created = tsunagi::Endpoint::Create(&Config);
	if (!Created) return Fail(Created.status(), OutError);
	Endpoint = std::move(Created.value());
	UE_LOG(LogTsunagi, Log, TEXT("endpoint %s at %s"), *GetPeerId(), *GetLocalAddresses());
	return true;
}

void UTsunagiSubsystem::SetRelay(const FString& InRelayServer, const FString& Token, const FString& InRendezvousServer)
{
	RelayServer = InRelayServer;
	RelayToken = Token;
	RendezvousServer = InRendezvousServer;
}

void UTsunagiSubsystem::StopEndpoint()
{
	Endpoint = tsunagi::Endpoint();
}

FString UTsunagiSubsystem::GetPeerId() const
{
	auto Id = Endpoint.PeerId();
	return Id ? FromUtf8(Id.value()) : FString();
}

FString UTsunagiSubsystem::GetLocalAddresses() const
{
	auto Addrs = Endpoint.LocalAddresses();
	return Addrs ? FromUtf8(Addrs.value()) : FString();
}

bool UTsunagiSubsystem::Connect(const FString& PeerId, const FString& Addresses, FString& OutError)
{
	tsunagi::Status Status = Endpoint.Connect(ToUtf8(PeerId), ToUtf8(Addresses));
	return Status ? true : Fail(Status, OutError);
}

bool UTsunagiSubsystem::ConnectPeer(const FString& PeerId, FString& OutError)
{
	tsunagi::Status Status = Endpoint.ConnectPeer(ToUtf8(PeerId));
	return Status ? true : Fail(Status, OutError);
}

bool UTsunagiSubsystem::CreateOffer(const FString& PeerId, TArray<uint8>& OutOffer, FString& OutError)
{
	auto Offer = Endpoint.CreateOffer(ToUtf8(PeerId));
	if (!Offer) return Fail(Offer.status(), OutError);
	OutOffer = TArray<uint8>(Offer.value().data(), Offer.value().size());
	return true;
}

bool UTsunagiSubsystem::ApplySignal(const TArray<uint8>& Blob, TArray<uint8>& OutAnswer, FString& OutError)
{
	auto Answer = Endpoint.ApplySignal(tsunagi::Bytes(Blob.GetData(), Blob.Num()));
	if (!Answer) return Fail(Answer.status(), OutError);
	OutAnswer = TArray<uint8>(Answer.value().data(), Answer.value().size());
	return true;
}

bool UTsunagiSubsystem::SendReliable(const FString& PeerId, int32 Channel, const TArray<uint8>& Bytes, FString& OutError)
{
	tsunagi::Status Status = Endpoint.SendReliable(ToUtf8(PeerId), static_cast<uint16_t>(Channel), tsunagi::Bytes(Bytes.GetData(), Bytes.Num()));
	return Status ? true : Fail(Status, OutError);
}

bool UTsunagiSubsystem::SendUnreliable(const FString& PeerId, const TArray<uint8>& Bytes, FString& OutError)
{
	tsunagi::Status Status = Endpoint.SendUnreliable(ToUtf8(PeerId), tsunagi::Bytes(Bytes.GetData(), Bytes.Num()));
	return Status ? true : Fail(Status, OutError);
}

int32 UTsunagiSubsystem::GetDatagramLimit(const FString& PeerId) const
{
	return static_cast<int32>(Endpoint.DatagramLimit(ToUtf8(PeerId)).value_or(0));
}

void UTsunagiSubsystem::Disconnect(const FString& PeerId, const FString& Reason)
{
	Endpoint.Disconnect(ToUtf8(PeerId), ToUtf8(Reason));
}

void UTsunagiSubsystem::Tick(float DeltaTime)
{
	Endpoint.Pump();
	// Bounded per frame so a flood cannot stall the game thread; the rest waits a tick.
	for (int32 Handled = 0; Handled < 1024 && Endpoint.PollEvent(Event); ++Handled)
	{
		const FString Peer = FromUtf8(Event.peer);
		const ETsunagiPath Path = static_cast<ETsunagiPath>(Event.path);
		switch (Event.kind)
		{
		case TSUNAGI_EVENT_CONNECTED: OnConnected.Broadcast(Peer, Path); break;
		case TSUNAGI_EVENT_CONNECT_FAILED: OnConnectFailed.Broadcast(Peer, FromUtf8(Event.text())); break;
		case TSUNAGI_EVENT_DISCONNECTED: OnDisconnected.Broadcast(Peer, FromUtf8(Event.text())); break;
		case TSUNAGI_EVENT_PATH_CHANGED: OnPathChanged.Broadcast(Peer, Path); break;
		case TSUNAGI_EVENT_MESSAGE: OnMessage.Broadcast(Peer, Event.channel, TArray<uint8>(Event.payload.data(), Event.payload.size())); break;
		case TSUNAGI_EVENT_DATAGRAM: OnDatagram.Broadcast(Peer, TArray<uint8>(Event.payload.data(), Event.payload.size())); break;
		default: break;
		}
	}
}

TStatId UTsunagiSubsystem::GetStatId() const
{
	RETURN_QUICK_DECLARE_CYCLE_STAT(UTsunagiSubsystem, STATGROUP_Tickables);
}

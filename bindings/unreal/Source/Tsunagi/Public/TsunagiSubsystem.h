#pragma once

#include "CoreMinimal.h"
#include "Subsystems/GameInstanceSubsystem.h"
#include "Tickable.h"

#include "tsunagi.hpp"

#include "TsunagiSubsystem.generated.h"

/** Path kinds, mirroring tsunagi_path_kind. */
UENUM(BlueprintType)
enum class ETsunagiPath : uint8
{
	None = 0,
	DirectIPv6 = 1,
	DirectIPv4 = 2,
	Relay = 3
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiConnected, const FString&, PeerId, ETsunagiPath, Path);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiConnectFailed, const FString&, PeerId, const FString&, Error);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiDisconnected, const FString&, PeerId, const FString&, Reason);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiPathChanged, const FString&, PeerId, ETsunagiPath, Path);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_ThreeParams(FTsunagiMessage, const FString&, PeerId, int32, Channel, const TArray<uint8>&, Bytes);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FTsunagiDatagram, const FString&, PeerId, const TArray<uint8>&, Bytes);

/**
 * One Tsunagi endpoint per game instance. Start it with StartEndpoint, connect and
 * send from Blueprint or C++, and bind the delegates: events are pumped on the game
 * thread every tick, so handlers may touch the world.
 */
UCLASS()
class TSUNAGI_API UTsunagiSubsystem : public UGameInstanceSubsystem, public FTickableGameObject
{
	GENERATED_BODY()

public:
	virtual void Deinitialize() override;

	/** Creates the endpoint. bIPv4Only for console builds without IPv6 (IPv6 players are then met through the relay). */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool StartEndpoint(bool bIPv4Only, bool bLoopbackOnly, int32 BindPort, FString& OutError);

	/**
	 * Relay and rendezvous settings for the next StartEndpoint (empty strings: none).
	 * RelayServer and RendezvousServer are "host:port" (usually the same tsunagi-relay);
	 * Token is a tsunagi1. token from your backend. With a rendezvous server,
	 * StartEndpoint registers there (blocking up to about 10 s) and ConnectPeer works.
	 */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	void SetRelay(const FString& RelayServer, const FString& Token, const FString& RendezvousServer);

	/** Closes every session and destroys the endpoint. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	void StopEndpoint();

	/** This player's id (tsu...), to share through your lobby. */
	UFUNCTION(BlueprintPure, Category = "Tsunagi")
	FString GetPeerId() const;

	/** Local IP:port list, comma-separated. */
	UFUNCTION(BlueprintPure, Category = "Tsunagi")
	FString GetLocalAddresses() const;

	/** Starts connecting; OnConnected or OnConnectFailed follows. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool Connect(const FString& PeerId, const FString& Addresses, FString& OutError);

	/** Connects by peer id through the rendezvous server (see SetRelay); OnConnected or OnConnectFailed follows. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool ConnectPeer(const FString& PeerId, FString& OutError);

	/**
	 * An offer to PeerId for your lobby or server to carry (binary, at most
	 * TSUNAGI_SIGNAL_MAX_SIZE bytes). Blocks up to about 3 s while a relay allocation is
	 * still being made. Pass the answer that comes back to ApplySignal.
	 */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool CreateOffer(const FString& PeerId, TArray<uint8>& OutOffer, FString& OutError);

	/**
	 * Applies a blob from the other player. For an offer, OutAnswer is the answer to send
	 * back; for an answer, OutAnswer is empty and connecting starts (OnConnected or
	 * OnConnectFailed follows).
	 */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool ApplySignal(const TArray<uint8>& Blob, TArray<uint8>& OutAnswer, FString& OutError);

	/** Reliable, ordered per channel. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool SendReliable(const FString& PeerId, int32 Channel, const TArray<uint8>& Bytes, FString& OutError);

	/** Unreliable; at most GetDatagramLimit bytes. */
	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	bool SendUnreliable(const FString& PeerId, const TArray<uint8>& Bytes, FString& OutError);

	UFUNCTION(BlueprintPure, Category = "Tsunagi")
	int32 GetDatagramLimit(const FString& PeerId) const;

	UFUNCTION(BlueprintCallable, Category = "Tsunagi")
	void Disconnect(const FString& PeerId, const FString& Reason);

	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiConnected OnConnected;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiConnectFailed OnConnectFailed;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiDisconnected OnDisconnected;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiPathChanged OnPathChanged;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiMessage OnMessage;
	UPROPERTY(BlueprintAssignable, Category = "Tsunagi") FTsunagiDatagram OnDatagram;

	// FTickableGameObject
	virtual void Tick(float DeltaTime) override;
	virtual TStatId GetStatId() const override;
	virtual bool IsTickable() const override { return Endpoint.valid(); }
	virtual ETickableTickType GetTickableTickType() const override { return ETickableTickType::Conditional; }

private:
	FString RelayServer;
	FString RelayToken;
	FString RendezvousServer;
	tsunagi::Endpoint Endpoint;
	tsunagi::Event Event;
};
